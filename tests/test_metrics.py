"""keras_recipes.metrics: conlleval's chunk rules and entity-level scores, by hand-counted examples."""

import pytest

from keras_recipes.metrics import detect_scheme, entity_scores, get_entities, iob1_to_bio


def test_bio_entities_span_from_b_through_following_i():
    tags = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "O"]
    assert get_entities(tags) == [("PER", 0, 1), ("LOC", 3, 3), ("LOC", 4, 5)]


def test_iob1_entities_start_with_i_and_b_splits_same_type_neighbours():
    tags = ["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"]
    assert get_entities(tags) == [("PER", 0, 1), ("PER", 2, 2), ("LOC", 4, 4), ("ORG", 5, 5)]


def test_i_after_o_or_other_type_starts_a_chunk_as_in_conlleval():
    assert get_entities(["O", "I-ORG", "I-ORG"]) == [("ORG", 1, 2)]
    assert get_entities(["B-PER", "I-LOC", "I-LOC"]) == [("PER", 0, 0), ("LOC", 1, 2)]


def test_entity_at_sentence_end_and_start_are_closed_at_the_boundary():
    assert get_entities(["O", "B-MISC", "I-MISC"]) == [("MISC", 1, 2)]
    assert get_entities(["I-MISC"]) == [("MISC", 0, 0)]
    assert get_entities([]) == []
    gold = [["O", "B-PER"], ["I-PER", "O"]]  # must not join across the sentence break
    assert entity_scores(gold, gold)["overall"]["gold"] == 2


def test_iobes_and_untyped_tags():
    assert get_entities(["S-PER", "B-LOC", "E-LOC", "O"]) == [("PER", 0, 0), ("LOC", 1, 2)]
    assert get_entities(["B", "I", "O", "B"]) == [("", 0, 1), ("", 3, 3)]


def test_scores_count_only_exact_span_and_type_matches():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-MISC", "I-MISC"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "O", "B-LOC", "I-LOC"]]
    # gold: PER(0,1) LOC(3) | ORG(0) MISC(2,3)  -> 4
    # pred: PER(0,0) LOC(3) | ORG(0) LOC(2,3)   -> 4, correct: LOC(3), ORG(0) -> 2
    scores = entity_scores(gold, pred)
    overall = scores["overall"]
    assert (overall["correct"], overall["predicted"], overall["gold"]) == (2, 4, 4)
    assert overall["precision"] == pytest.approx(0.5)
    assert overall["recall"] == pytest.approx(0.5)
    assert overall["f1"] == pytest.approx(0.5)
    loc = scores["per_type"]["LOC"]
    assert (loc["correct"], loc["predicted"], loc["gold"]) == (1, 2, 1)
    assert loc["precision"] == pytest.approx(0.5) and loc["recall"] == pytest.approx(1.0)
    assert loc["f1"] == pytest.approx(2 / 3)
    assert scores["per_type"]["MISC"]["precision"] == 0.0  # nothing predicted: 0, no error
    assert scores["accuracy"] == pytest.approx(5 / 8)


def test_iob1_gold_against_bio_prediction_scores_by_entities_not_tags():
    gold = [["I-PER", "I-PER", "B-PER", "O", "I-LOC"]]
    pred = [iob1_to_bio(gold[0])]
    assert pred[0] == ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]
    scores = entity_scores(gold, pred)
    assert scores["overall"]["f1"] == 1.0
    assert scores["accuracy"] == pytest.approx(3 / 5)  # tags differ, entities do not


def test_precision_recall_differ_when_counts_differ():
    gold = [["B-PER", "O", "B-PER", "O", "B-LOC"]]
    pred = [["B-PER", "O", "O", "O", "O"]]
    overall = entity_scores(gold, pred)["overall"]
    assert overall["precision"] == 1.0
    assert overall["recall"] == pytest.approx(1 / 3)
    assert overall["f1"] == pytest.approx(2 * (1 / 3) / (4 / 3))


def test_no_entities_anywhere_gives_zero_scores():
    overall = entity_scores([["O", "O"]], [["O", "O"]])["overall"]
    assert overall == {
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "correct": 0,
        "predicted": 0,
        "gold": 0,
    }


def test_detect_scheme():
    assert detect_scheme([["B-PER", "I-PER", "O"], ["O", "B-LOC"]]) == "bio"
    assert detect_scheme([["O", "O"], ["I-PER", "O"]]) == "iob1"
    assert detect_scheme([["B-PER", "I-LOC"]]) == "iob1"


def test_mismatched_lengths_are_errors():
    with pytest.raises(ValueError, match="one predicted sequence per gold sentence"):
        entity_scores([["O"]], [])
    with pytest.raises(ValueError, match="Sentence 0: 2 gold tags but 1 predicted"):
        entity_scores([["O", "O"]], [["O"]])
