"""Evaluation scores: entity-level F1 with the rules of CoNLL's `conlleval`, and corpus BLEU.

Named-entity taggers are scored on whole entities ("chunks"), not tokens: a
predicted entity counts only if its first token, last token and type all
match a gold entity. `conlleval.pl` (CoNLL-2000/2003 shared tasks) decides
where chunks start and end from each tag and the tag before it, with rules
that read both tagging schemes of CoNLL data the same way:

- BIO (IOB2): every entity starts with `B-X`, continues with `I-X`.
- IOB1 (the original CoNLL-2003 files): entities start with `I-X`; `B-X` is
  used only where an entity directly follows another of the same type.

An `I-X` after `O` or after another type starts a new chunk (so a tagger
that never writes `B-` is still scored), and a change of type ends one.
`E-`/`S-` (IOBES) tags follow the common Python port of conlleval; untyped
tags (`B`, `I`) are entities of type `""`, as in conlleval.
Sentence boundaries always end a chunk.

Examples:

>>> gold = [["B-PER", "I-PER", "O", "B-LOC"]]
>>> pred = [["B-PER", "O", "O", "B-LOC"]]
>>> overall = entity_scores(gold, pred)["overall"]
>>> overall["precision"], overall["recall"], overall["f1"]
(0.5, 0.5, 0.5)

Translations (and any generated token lists) are scored with `corpus_bleu`,
corpus-level BLEU (Papineni et al., 2002) against one or more references
per hypothesis.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence

TAG_SCHEMES = ("bio", "iob1")


def _split_tag(tag: str) -> tuple[str, str]:
    """(prefix, type) as conlleval reads them: "B-PER" -> ("B", "PER"), "O" -> ("O", "")."""
    prefix, sep, entity_type = tag.partition("-")
    if not sep:
        return tag, ""
    return prefix, entity_type


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, entity_type: str) -> bool:
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag not in ("O", ".") and prev_type != entity_type


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, entity_type: str) -> bool:
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag not in ("O", ".") and prev_type != entity_type


def get_entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The chunks of one sentence's tags, as `(type, first, last)` (inclusive).

    Args:
        tags: sequence of str. One tag per token, BIO, IOB1 or IOBES.

    Examples:

    >>> get_entities(["I-PER", "I-PER", "B-PER", "O", "I-LOC"])
    [('PER', 0, 1), ('PER', 2, 2), ('LOC', 4, 4)]
    """
    entities = []
    prev_tag, prev_type, start = "O", "", None
    for i, full_tag in enumerate(list(tags) + ["O"]):
        tag, entity_type = _split_tag(str(full_tag))
        if start is not None and _end_of_chunk(prev_tag, tag, prev_type, entity_type):
            entities.append((prev_type, start, i - 1))
            start = None
        if _start_of_chunk(prev_tag, tag, prev_type, entity_type):
            start = i
        prev_tag, prev_type = tag, entity_type
    return entities


def detect_scheme(tag_sequences: Sequence[Sequence[str]]) -> str:
    """`"iob1"` if some entity starts with `I-` (after `O` or another type), else `"bio"`."""
    for tags in tag_sequences:
        prev = "O"
        for tag in tags:
            prefix, entity_type = _split_tag(tag)
            prev_prefix, prev_type = _split_tag(prev)
            if prefix == "I" and (prev_prefix == "O" or prev_type != entity_type):
                return "iob1"
            prev = tag
    return "bio"


def iob1_to_bio(tags: Sequence[str]) -> list[str]:
    """Rewrites one sentence's IOB1 tags as BIO: every entity starts with `B-`.

    The entities (by conlleval's rules) are unchanged, so scores are too.

    Examples:

    >>> iob1_to_bio(["I-PER", "I-PER", "B-PER", "O", "I-LOC"])
    ['B-PER', 'I-PER', 'B-PER', 'O', 'B-LOC']
    """
    bio = ["O" if _split_tag(t)[0] == "O" else t for t in tags]
    for entity_type, first, last in get_entities(tags):
        bio[first] = f"B-{entity_type}"
        for i in range(first + 1, last + 1):
            bio[i] = f"I-{entity_type}"
    return bio


def _prf(correct: int, predicted: int, gold: int) -> dict[str, float | int]:
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "correct": correct,
        "predicted": predicted,
        "gold": gold,
    }


def entity_scores(
    gold_tags: Sequence[Sequence[str]], predicted_tags: Sequence[Sequence[str]]
) -> dict:
    """conlleval's entity-level precision, recall and F1, overall and per type.

    Args:
        gold_tags: sequence of sentences, each a sequence of tags.
        predicted_tags: the tagger's tags, same shape.

    Returns:
        A dict: `"overall"` and `"per_type"` (type -> scores) with
        `precision`, `recall`, `f1` (fractions in [0, 1]) and the counts
        `correct`, `predicted`, `gold`, plus `"accuracy"`, the fraction of
        tokens tagged exactly right (conlleval's first figure).

    Examples:

    >>> scores = entity_scores([["B-ORG", "I-ORG", "O"]], [["B-ORG", "I-ORG", "O"]])
    >>> scores["overall"]["f1"], scores["accuracy"]
    (1.0, 1.0)
    """
    if len(gold_tags) != len(predicted_tags):
        raise ValueError(
            f"gold_tags has {len(gold_tags)} sentences but predicted_tags has "
            f"{len(predicted_tags)}; pass one predicted sequence per gold sentence."
        )
    counts: dict[str, list[int]] = {}
    tokens = token_hits = 0
    for i, (gold, pred) in enumerate(zip(gold_tags, predicted_tags, strict=True)):
        if len(gold) != len(pred):
            raise ValueError(
                f"Sentence {i}: {len(gold)} gold tags but {len(pred)} predicted tags; "
                "predict exactly one tag per token."
            )
        tokens += len(gold)
        token_hits += sum(g == p for g, p in zip(gold, pred, strict=True))
        gold_set = set(get_entities(gold))
        pred_set = set(get_entities(pred))
        for entity_type, *_ in gold_set | pred_set:
            counts.setdefault(entity_type, [0, 0, 0])
        for entity in gold_set:
            counts[entity[0]][2] += 1
        for entity in pred_set:
            counts[entity[0]][1] += 1
            if entity in gold_set:
                counts[entity[0]][0] += 1
    totals = [sum(c[k] for c in counts.values()) for k in range(3)]
    return {
        "overall": _prf(*totals),
        "per_type": {t: _prf(*counts[t]) for t in sorted(counts)},
        "accuracy": token_hits / tokens if tokens else 0.0,
    }


def _ngrams(tokens: Sequence[str], n: int) -> collections.Counter:
    return collections.Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(
    references: Sequence[Sequence[str] | Sequence[Sequence[str]]],
    hypotheses: Sequence[Sequence[str]],
    max_n: int = 4,
) -> float:
    """Corpus-level BLEU (Papineni et al., 2002), in [0, 1], no smoothing.

    Clipped n-gram counts for n = 1..`max_n` are summed over the whole corpus
    before dividing; the score is the geometric mean of the `max_n`
    precisions times the brevity penalty `exp(1 - r / c)` when the total
    hypothesis length `c` is below the total closest-reference length `r`.
    It is 0 when some n-gram order has no match at all.

    Args:
        references: per hypothesis, one token list or a list of token lists.
        hypotheses: token lists.
        max_n: int. Highest n-gram order. Defaults to `4`.

    Examples:

    >>> corpus_bleu([["the", "cat", "sat", "on", "the", "mat"]],
    ...             [["the", "cat", "sat", "on", "the", "mat"]])
    1.0
    """
    if len(references) != len(hypotheses):
        raise ValueError(
            f"{len(references)} references for {len(hypotheses)} hypotheses: give one each."
        )
    matches, totals = [0] * max_n, [0] * max_n
    hyp_length = ref_length = 0
    for refs, hyp in zip(references, hypotheses, strict=True):
        if refs and isinstance(refs[0], str):
            refs = [refs]
        hyp = list(hyp)
        hyp_length += len(hyp)
        ref_length += min((len(r) for r in refs), key=lambda n: (abs(n - len(hyp)), n))
        for n in range(1, max_n + 1):
            counts = _ngrams(hyp, n)
            most = collections.Counter()
            for ref in refs:
                most |= _ngrams(list(ref), n)
            matches[n - 1] += sum(min(c, most[g]) for g, c in counts.items())
            totals[n - 1] += max(len(hyp) - n + 1, 0)
    if hyp_length == 0 or min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / max_n
    brevity = 1.0 if hyp_length >= ref_length else math.exp(1.0 - ref_length / hyp_length)
    return brevity * math.exp(log_precision)
