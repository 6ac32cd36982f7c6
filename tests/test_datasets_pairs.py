"""keras_recipes.datasets.pairs.read_pairs: the Anki/Tatoeba sentence-pair format, on tiny files."""

import pytest

from keras_recipes.datasets.pairs import read_pairs

ATTRIBUTION = "CC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #2877274 (Seael)"


def write(tmp_path, text, name="spa.txt", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_two_column_file_as_in_spa_eng_zip(tmp_path):
    path = write(tmp_path, "Go.\tVe.\nGo.\tVete.\nI'm OK.\tEstoy bien.\n")
    assert read_pairs(path) == [("Go.", "Ve."), ("Go.", "Vete."), ("I'm OK.", "Estoy bien.")]


def test_three_column_file_drops_the_attribution(tmp_path):
    path = write(tmp_path, f"Go.\tVe.\t{ATTRIBUTION}\nWho?\t¿Quién?\t{ATTRIBUTION}\n")
    assert read_pairs(str(path)) == [("Go.", "Ve."), ("Who?", "¿Quién?")]


def test_mixed_columns_blank_lines_crlf_bom_and_spaces(tmp_path):
    text = "\ufeffGo.\tVe.\r\n\r\n  Run! \t ¡Corre!\t" + ATTRIBUTION + "\r\n   \n"
    assert read_pairs(write(tmp_path, text)) == [("Go.", "Ve."), ("Run!", "¡Corre!")]


@pytest.mark.parametrize(
    "line,message",
    [
        ("Go. Ve.", r"spa.txt:2: .* has 1 tab-separated column; expected 2 or 3"),
        ("Go.\tVe.\tCC-BY\textra", r"spa.txt:2: .* has 4 tab-separated columns"),
        ("Go.\t \tCC-BY", r"spa.txt:2: the target \(second column\) is empty"),
        ("\tVe.", r"spa.txt:2: the source \(first column\) is empty"),
    ],
)
def test_malformed_line_names_file_line_and_fix(tmp_path, line, message):
    path = write(tmp_path, f"Hi.\tHola.\n{line}\nNo.\tNo.\n")
    with pytest.raises(ValueError, match=message):
        read_pairs(path)


def test_missing_empty_and_non_utf8_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_pairs(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match="holds no source<TAB>target lines"):
        read_pairs(write(tmp_path, "\n\n"))
    with pytest.raises(ValueError, match=r"\.txt, line 1 \(byte offset 5\): not valid utf-8"):
        read_pairs(write(tmp_path, "Who?\t¿Quién?\n", encoding="latin-1"))
    latin = write(tmp_path, "Who?\t¿Quién?\n", name="latin.txt", encoding="latin-1")
    assert read_pairs(latin, encoding="latin-1") == [("Who?", "¿Quién?")]
