"""keras_recipes.datasets.text: GLUE's SST-2 TSV files and the held-out training sentences."""

import pytest

from keras_recipes.datasets.text import load_sst2, sst2_validation_split

ROWS = [("a charming , funny film .", 1), ("it 's dull", 0), ('he said " no " .', 0)]


def write_split(folder, name, header, rows):
    folder.mkdir(exist_ok=True)
    lines = ["\t".join(header)]
    for sentence, label in rows:
        fields = {"sentence": sentence, "content": sentence, "label": str(label)}
        lines.append("\t".join(fields[column] for column in header))
    (folder / f"{name}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    "header", [("sentence", "label"), ("label", "sentence"), ("label", "content")]
)
def test_sst2_columns_are_found_by_the_header_names(tmp_path, header):
    write_split(tmp_path, "dev", header, ROWS)
    texts, labels = load_sst2(tmp_path, "dev")
    assert texts == [sentence for sentence, _ in ROWS]
    assert labels == [label for _, label in ROWS]


def test_sst2_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="holding train.tsv and dev.tsv"):
        load_sst2(tmp_path, "train")
    with pytest.raises(ValueError, match="test.tsv has no labels"):
        load_sst2(tmp_path, "test")
    write_split(tmp_path, "train", ("text", "label"), [])
    with pytest.raises(ValueError, match="header naming the columns 'sentence' and 'label'"):
        load_sst2(tmp_path, "train")
    (tmp_path / "train.tsv").write_text("sentence\tlabel\ngood film\tpositive\n")
    with pytest.raises(ValueError, match=r"train.tsv:2: label 'positive'"):
        load_sst2(tmp_path, "train")
    (tmp_path / "train.tsv").write_text("sentence\tlabel\ngood film\t1\nbad\n")
    with pytest.raises(ValueError, match=r"train.tsv:3: 1 tab-separated fields"):
        load_sst2(tmp_path, "train")


def phrases(sentence):
    words = sentence.split()
    return [
        " ".join(words[start:end])
        for start in range(len(words))
        for end in range(start + 1, len(words) + 1)
    ]


# Three treebank-like sentences with some of their phrases, as SST-2's train split holds them.
SENTENCES = [
    ("the acting is superb and the story moves along briskly", 1),
    ("a tired , predictable and thoroughly forgettable little movie", 0),
    ("one of the year 's most moving and honest films", 1),
]
TRAIN = SENTENCES + [
    ("the acting is superb", 1),
    ("superb", 1),
    ("predictable and thoroughly forgettable", 0),
    ("the story moves along", 1),
    ("most moving and honest films", 1),
    ("the acting is superb and the story moves along", 1),  # a phrase of 9 tokens
]


def test_validation_split_holds_out_whole_sentences_and_their_phrases():
    texts = [text for text, _ in TRAIN]
    labels = [label for _, label in TRAIN]
    for seed in range(6):
        (train, train_labels), (held_out, held_labels) = sst2_validation_split(
            texts, labels, num_sentences=2, seed=seed
        )
        assert len(held_out) == 2 and set(held_out) <= {text for text, _ in SENTENCES}
        assert held_labels == [dict(TRAIN)[text] for text in held_out]
        leaked = {phrase for sentence in held_out for phrase in phrases(sentence)}
        assert not leaked & set(train)
        kept = [text for text in texts if text not in leaked]
        assert train == kept and train_labels == [dict(TRAIN)[text] for text in kept]
    with pytest.raises(ValueError, match="Found only 3 whole sentences"):
        sst2_validation_split(texts, labels, num_sentences=4)
