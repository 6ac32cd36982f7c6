"""Named-entity recognition data: a generated corpus and a CoNLL-2003 reader.

`generate_ner_corpus` writes sentences from templates and name lists, with
entities of CoNLL-2003's four types (PER, LOC, ORG, MISC), many of them
several tokens long, tagged in BIO. The same surface word can belong to
different types ("Jordan" the person and the country, "Washington" the
person and the city), so a tagger has to read the context, which is what a
bidirectional RNN is for. No download needed; a seed fixes the corpus.

`read_conll` reads the CoNLL-2003 column format (one token per line, the
NER tag in the last column, blank lines between sentences, `-DOCSTART-`
lines between documents); `find_conll_splits` finds the train, validation
and test files in a folder under their usual names.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from keras_recipes._text import format_lines, read_text_file

ENTITY_TYPES = ("PER", "LOC", "ORG", "MISC")

NAMES = {
    "PER": [
        "John Smith",
        "Maria Garcia",
        "Angela Merkel",
        "Jordan",
        "Washington",
        "Li Wei",
        "Ahmed Hassan",
        "Sophie Martin",
        "Kenji Tanaka",
        "Olga Petrova",
        "Peter",
        "Anna Kowalski",
        "Carlos Silva",
        "Priya Sharma",
        "James O'Brien",
        "Fatima Zahra",
        "Lucas",
        "Emma Johansson",
        "Boris Becker",
        "Nelson Mandela",
    ],  # fmt: skip
    "LOC": [
        "Paris",
        "New York",
        "Jordan",
        "Washington",
        "Berlin",
        "Tokyo",
        "Brazil",
        "South Africa",
        "the Alps",
        "Lake Geneva",
        "Cairo",
        "Sydney",
        "Canada",
        "Buenos Aires",
        "Mumbai",
        "the Nile",
        "Moscow",
        "Nairobi",
        "Lima",
        "Oslo",
    ],  # fmt: skip
    "ORG": [
        "the United Nations",
        "Reuters",
        "Siemens",
        "Toyota",
        "the World Bank",
        "Real Madrid",
        "NASA",
        "the European Commission",
        "Barclays",
        "Interpol",
        "Greenpeace",
        "Manchester United",
        "the Red Cross",
        "Samsung",
        "UNESCO",
        "Deutsche Bank",
        "Ajax",
        "the IMF",
        "Nokia",
        "Oxfam",
    ],  # fmt: skip
    "MISC": [
        "English",
        "German",
        "Olympic Games",
        "World Cup",
        "Japanese",
        "Christmas",
        "Nobel Prize",
        "French",
        "Tour de France",
        "Brazilian",
        "Euro 2024",
        "Ramadan",
        "Italian",
        "Grammy Awards",
        "Canadian",
        "Australian Open",
        "Chinese",
        "Easter",
        "Super Bowl",
        "Spanish",
    ],  # fmt: skip
}

# {TYPE} slots are filled from NAMES; everything else is plain text (tag O).
TEMPLATES = [
    "{PER} flew to {LOC} on Monday .",
    "{PER} , a spokesman for {ORG} , said the talks in {LOC} went well .",
    "{ORG} reported higher profits in {LOC} .",
    "The {MISC} team beat {ORG} 2-1 in {LOC} .",
    "{PER} won the {MISC} for the second time .",
    "Shares of {ORG} fell 3 percent after {PER} resigned .",
    "{PER} met {PER} in {LOC} to discuss the {MISC} .",
    "Officials in {LOC} said {ORG} would open an office there .",
    "The {MISC} starts in {LOC} next week , {ORG} said .",
    "{PER} told {ORG} that {LOC} needs more rain .",
    "Fans in {LOC} celebrated the {MISC} late into the night .",
    "{ORG} hired {PER} as chief executive .",
    "Rain delayed the {MISC} match between {ORG} and {ORG} .",
    "{PER} , who was born in {LOC} , joined {ORG} in 2019 .",
    "Police in {LOC} questioned {PER} on Friday .",
    "The {MISC} film was shown in {LOC} and {LOC} .",
    "{ORG} and {ORG} signed a deal worth 5 million dollars .",
    "Prices rose in {LOC} , according to {ORG} .",
    "{PER} speaks {MISC} and {MISC} .",
    "A storm hit {LOC} , and {ORG} sent help .",
]


NAME_SPLITS = {"train": slice(0, 15), "test": slice(15, None), "all": slice(None)}


def _fill(template: str, rng: random.Random, names: slice) -> tuple[list[str], list[str]]:
    tokens, tags = [], []
    for piece in template.split():
        if piece.startswith("{") and piece.endswith("}"):
            entity_type = piece[1:-1]
            words = rng.choice(NAMES[entity_type][names]).split()
            if words[0] == "the":  # "the" is not part of the name, as in CoNLL-2003
                tokens.append("the")
                tags.append("O")
                words = words[1:]
            tokens.extend(words)
            tags.extend([f"B-{entity_type}"] + [f"I-{entity_type}"] * (len(words) - 1))
        else:
            tokens.append(piece)
            tags.append("O")
    if tokens[0] == "the":
        tokens[0] = "The"
    return tokens, tags


def generate_ner_corpus(
    num_sentences: int = 2000, seed: int = 0, names: str = "all"
) -> list[tuple[list[str], list[str]]]:
    """Sentences with PER, LOC, ORG and MISC entities, tagged in BIO.

    Each entity type has 20 names; `names="train"` draws from the first 15
    and `names="test"` from the other 5, so a test set made with
    `names="test"` holds only names the tagger never saw in training and it
    must tag them from context.

    Args:
        num_sentences: int. How many sentences. Defaults to `2000`.
        seed: int. Random seed; the same seed gives the same corpus.
        names: str. `"all"`, `"train"` or `"test"`: which names fill the
            slots. Defaults to `"all"`.

    Returns:
        A list of `(tokens, tags)` pairs of equal-length lists of str.

    Examples:

    >>> train = generate_ner_corpus(2000, seed=0, names="train")
    >>> test = generate_ner_corpus(200, seed=1, names="test")  # unseen names
    >>> tokens, tags = train[0]
    >>> list(zip(tokens, tags))[5:9]
    [('between', 'O'), ('UNESCO', 'B-ORG'), ('and', 'O'), ('NASA', 'B-ORG')]
    """
    if isinstance(num_sentences, bool) or not isinstance(num_sentences, int) or num_sentences < 1:
        raise ValueError(f"`num_sentences` must be a positive int, got {num_sentences!r}.")
    if names not in NAME_SPLITS:
        raise ValueError(f"`names` must be one of {list(NAME_SPLITS)}, got {names!r}.")
    rng = random.Random(seed)
    return [_fill(rng.choice(TEMPLATES), rng, NAME_SPLITS[names]) for _ in range(num_sentences)]


def read_conll(
    path: str | os.PathLike, encoding: str = "utf-8"
) -> list[tuple[list[str], list[str]]]:
    """Reads a CoNLL-2003 style file into `(tokens, tags)` sentences.

    Columns are separated by whitespace; the first is the token and the last
    the NER tag (CoNLL-2003 has token, POS, chunk and NER; two-column files
    work too). Blank lines end sentences and `-DOCSTART-` lines are skipped.
    Tags are returned as written (BIO or IOB1; see
    `keras_recipes.metrics.detect_scheme` and `iob1_to_bio`).

    Args:
        path: path of the file (e.g. `eng.train` or `train.txt`).
        encoding: str. Defaults to `"utf-8"`.

    Examples:

    >>> import tempfile
    >>> scratch = tempfile.TemporaryDirectory()
    >>> path = Path(scratch.name) / "train.txt"
    >>> _ = path.write_text("-DOCSTART- -X- -X- O\\n\\n"
    ...                     "EU NNP B-NP B-ORG\\nrejects VBZ B-VP O\\n\\n"
    ...                     "Peter NNP B-NP B-PER\\nBlackburn NNP I-NP I-PER\\n")
    >>> sentences = read_conll(path)  # e.g. "conll2003/train.txt"
    >>> sentences
    [(['EU', 'rejects'], ['B-ORG', 'O']), (['Peter', 'Blackburn'], ['B-PER', 'I-PER'])]
    >>> tokens, tags = sentences[0]
    >>> scratch.cleanup()
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"CoNLL file {str(path)!r} does not exist; check the path.")
    sentences, tokens, tags = [], [], []
    for number, line in enumerate(format_lines(read_text_file(path, encoding)), 1):
        fields = line.replace("\t", " ").split(" ")  # CoNLL separates by spaces or tabs only
        fields = [field for field in fields if field]
        if not fields or fields[0] == "-DOCSTART-":
            if tokens:
                sentences.append((tokens, tags))
                tokens, tags = [], []
            continue
        if len(fields) < 2:
            raise ValueError(
                f"{path}:{number}: {line!r} has one column; CoNLL lines need the token "
                "first and the NER tag last, separated by spaces or tabs."
            )
        tag = fields[-1]
        if tag != "O" and tag[:2] not in ("B-", "I-", "E-", "S-"):
            raise ValueError(
                f"{path}:{number}: last column {tag!r} is not an NER tag (O, B-X, I-X); "
                "the NER tag must be the last column."
            )
        tokens.append(fields[0])
        tags.append(tag)
    if tokens:
        sentences.append((tokens, tags))
    if not sentences:
        raise ValueError(f"CoNLL file {str(path)!r} holds no sentences.")
    return sentences


# Split name -> file names people use for it (CoNLL-2003's own, then the common copies).
SPLIT_FILES = {
    "train": ("eng.train", "train.txt", "train.conll", "train"),
    "valid": ("eng.testa", "valid.txt", "dev.txt", "valid.conll", "dev.conll", "valid", "dev"),
    "test": ("eng.testb", "test.txt", "test.conll", "test"),
}


def find_conll_splits(directory: str | os.PathLike) -> dict[str, Path]:
    """The train, valid and test files of a CoNLL-2003 folder.

    Looks for CoNLL-2003's names (`eng.train`, `eng.testa`, `eng.testb`) and
    the common copies' (`train.txt`, `valid.txt` or `dev.txt`, `test.txt`).
    `train` is required; `valid` and `test` are returned when present.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"CoNLL folder {str(directory)!r} does not exist; check the path.")
    found = {}
    for split, names in SPLIT_FILES.items():
        for name in names:
            if (directory / name).is_file():
                found[split] = directory / name
                break
    if "train" not in found:
        raise ValueError(
            f"No training file in {str(directory)!r}: expected one of "
            f"{list(SPLIT_FILES['train'])} (and valid/test files beside it)."
        )
    return found
