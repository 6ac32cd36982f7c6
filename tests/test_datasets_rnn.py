"""Data for the RNN recipes: NER corpus and CoNLL reader, polarity and aclImdb, melodies and MIDI, sequences."""

import numpy as np
import pytest

from keras_recipes.datasets.music import (
    LOWEST,
    NUM_PITCHES,
    degree_to_pitch,
    generate_melodies,
    in_key_fraction,
    note_name,
    parse_note,
    read_midi,
    write_midi,
)
from keras_recipes.datasets.ner import (
    ENTITY_TYPES,
    NAMES,
    find_conll_splits,
    generate_ner_corpus,
    read_conll,
)
from keras_recipes.datasets.sequences import (
    adding_problem,
    make_windows,
    noisy_sine,
    seasonal_series,
)
from keras_recipes.datasets.text import load_imdb, load_polarity
from keras_recipes.metrics import detect_scheme, get_entities

# NER


def test_ner_corpus_is_bio_with_all_four_types_and_seeded():
    corpus = generate_ner_corpus(300, seed=5)
    assert corpus == generate_ner_corpus(300, seed=5)
    assert corpus != generate_ner_corpus(300, seed=6)
    types = set()
    for tokens, tags in corpus:
        assert len(tokens) == len(tags)
        types.update(t for t, _, _ in get_entities(tags))
        for entity_type, first, last in get_entities(tags):
            name = " ".join(tokens[first : last + 1])
            assert name in NAMES[entity_type] or f"the {name}" in NAMES[entity_type]
    assert types == set(ENTITY_TYPES)
    assert detect_scheme([tags for _, tags in corpus]) == "bio"


def test_ner_test_names_never_occur_in_training_names():
    def names(corpus):
        return {
            " ".join(tokens[a : b + 1]) for tokens, tags in corpus for _, a, b in get_entities(tags)
        }

    train = names(generate_ner_corpus(2000, seed=0, names="train"))
    test = names(generate_ner_corpus(500, seed=1, names="test"))
    assert train and test and not train & test
    with pytest.raises(ValueError, match="`names` must be one of"):
        generate_ner_corpus(5, names="dev")


CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP I-ORG
rejects VBZ B-VP O
German JJ B-NP I-MISC
call NN I-NP O
. . O O

Peter NNP B-NP I-PER
Blackburn NNP I-NP I-PER
"""


def test_read_conll_takes_first_and_last_columns_and_splits_sentences(tmp_path):
    path = tmp_path / "eng.train"
    path.write_text(CONLL)
    sentences = read_conll(path)
    assert sentences == [
        (["EU", "rejects", "German", "call", "."], ["I-ORG", "O", "I-MISC", "O", "O"]),
        (["Peter", "Blackburn"], ["I-PER", "I-PER"]),
    ]
    assert detect_scheme([tags for _, tags in sentences]) == "iob1"
    (tmp_path / "eng.testb").write_text(CONLL)
    assert find_conll_splits(tmp_path) == {"train": path, "test": tmp_path / "eng.testb"}


def test_read_conll_errors_name_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("EU B-ORG\nrejects NNP\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: last column 'NNP' is not an NER tag"):
        read_conll(path)
    with pytest.raises(ValueError, match="No training file"):
        find_conll_splits(tmp_path)


# Sentiment text


def test_polarity_has_100_of_each_label_and_reads_cp1252_dashes():
    texts, labels = load_polarity()
    assert len(texts) == 200 and sum(labels) == 100
    assert texts[0] == "simplistic , silly and tedious ." and labels[0] == 0
    assert any("\u2014" in t for t in texts)  # byte 0x97 in Windows-1252
    assert not any("__label__" in t for t in texts)


def test_polarity_rejects_unlabelled_lines(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("__label__pos good\nno label here\n")
    with pytest.raises(ValueError, match="p.txt:2: line starts with 'no'"):
        load_polarity(path)


def test_imdb_reader_reads_folder_layout_and_strips_br(tmp_path):
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for i in range(3):
                (folder / f"{i}_7.txt").write_text(f"{label} review {i}<br /><br />end")
    texts, labels = load_imdb(tmp_path, "test", max_per_class=2)
    assert labels == [0, 0, 1, 1]
    assert texts[0] == "neg review 0 end"
    with pytest.raises(ValueError, match="Pass the aclImdb folder"):
        load_imdb(tmp_path / "train", "train")


# Music


def test_melodies_start_on_tonic_stay_in_key_and_in_range():
    melodies, keys = generate_melodies(200, length=16, seed=3)
    assert melodies.shape == (200, 16)
    assert melodies.min() >= LOWEST and melodies.max() < LOWEST + NUM_PITCHES
    for melody, (tonic, mode) in zip(melodies, keys, strict=True):
        assert melody[0] == tonic
        assert melody[-1] % 12 == tonic % 12
        assert in_key_fraction(melody, tonic, mode) == 1.0
    assert {mode for _, mode in keys} == {"major", "minor"}


def test_scales_notes_and_in_key_fraction():
    assert [degree_to_pitch(d, 60, "major") for d in range(8)] == [60, 62, 64, 65, 67, 69, 71, 72]
    assert [degree_to_pitch(d, 57, "minor") for d in (-1, 0, 2)] == [55, 57, 60]
    assert note_name(60) == "C4" and note_name(70) == "A#4"
    assert parse_note("C4") == 60 and parse_note("Bb4") == 70 and parse_note("f#3") == 54
    # C major: C D E are in, C# and F# out
    assert in_key_fraction([60, 61, 62, 64, 66], 60, "major") == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="Cannot read the note 'H2'"):
        parse_note("H2")


def test_midi_round_trip(tmp_path):
    path = write_midi([60, 64, 67], tmp_path / "m.mid", beats_per_note=0.5)
    assert read_midi(path) == [(60, 0, 240), (64, 240, 240), (67, 480, 480)]
    with pytest.raises(ValueError, match="0-127"):
        write_midi([60, 200], tmp_path / "bad.mid")


# Sequences


def test_adding_problem_target_is_sum_of_the_two_marked_values():
    x, y = adding_problem(500, length=20, seed=1)
    assert x.shape == (500, 20, 2) and y.shape == (500, 1)
    assert (x[..., 1].sum(axis=1) == 2).all()
    assert (x[:, :10, 1].sum(axis=1) == 1).all()  # one mark in each half
    np.testing.assert_allclose((x[..., 0] * x[..., 1]).sum(axis=1), y[:, 0], rtol=1e-6)
    # predicting the mean, 1, has expected squared error Var(U1 + U2) = 1/6
    assert np.mean((y - 1.0) ** 2) == pytest.approx(1 / 6, abs=0.03)
    with pytest.raises(ValueError, match="at least 2"):
        adding_problem(5, length=1)


def test_windows_pair_each_window_with_the_next_value():
    x, y = make_windows(np.arange(10), window=3)
    assert x.shape == (7, 3, 1) and y.shape == (7, 1)
    np.testing.assert_array_equal(x[2, :, 0], [2, 3, 4])
    assert y[2, 0] == 5
    with pytest.raises(ValueError, match="not more than the window"):
        make_windows(np.arange(3), window=3)


def test_series_shapes_and_season():
    sine = noisy_sine(500, period=50, noise=0.0)
    np.testing.assert_allclose(sine[:450], sine[50:], atol=1e-5)
    series = seasonal_series(480, season=12, noise=0.0)
    assert series.shape == (480,) and series[-12:].mean() > series[:12].mean()  # trend up


def test_estimate_key_and_midi_melodies(tmp_path):
    from keras_recipes.datasets.music import estimate_key, midi_melodies

    assert estimate_key([60, 62, 64, 65, 67, 69, 71, 60]) == (0, "major")
    assert estimate_key([57, 59, 60, 62, 64, 65, 67, 57, 57]) == (9, "minor")  # A minor
    # E major written two octaves low is moved by octaves to start in C4-B4
    write_midi([40, 42, 44, 45, 47, 49, 51, 52], tmp_path / "low.mid")
    melodies, keys = midi_melodies(tmp_path, length=8)
    assert melodies.tolist() == [[64, 66, 68, 69, 71, 73, 75, 76]]
    assert keys == [(64, "major")]
    with pytest.raises(ValueError, match="no run of 16 notes"):
        midi_melodies(tmp_path, length=16)
