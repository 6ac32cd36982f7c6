"""recipes/music.py: one-to-many melody generation, MIDI and piano roll, built-in melodies and MIDI files."""

import pytest
from runs import help_text, read_metrics, run_recipes

from keras_recipes.datasets.music import read_midi, write_midi

# End-to-end runs: out of the fast suite, run by `pytest -m "heavy and not slow"` (.ci/run runs them).
pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("music")
    midi = tmp / "midi"
    midi.mkdir()
    scale = [62, 64, 66, 67, 69, 71, 73, 74]  # D major, written an octave low below
    for i in range(4):
        write_midi([p - 12 for p in scale + scale[::-1]] * 2, midi / f"tune{i}.mid")
    builtin, from_midi = tmp / "builtin", tmp / "from_midi"
    stdouts = run_recipes(
        "music",
        ["--quick", "--seed-note", "D4", "--mode", "minor", "--out", str(builtin)],
        ["--quick", "--midi", str(midi), "--length", "16", "--out", str(from_midi)],
    )
    return builtin, from_midi, stdouts


def test_builtin_run_writes_midi_starting_on_the_seed_and_piano_roll(runs):
    builtin, _, (stdout, _) = runs
    metrics = read_metrics(builtin)
    assert metrics["source"] == "rule-generated"
    assert metrics["in_key_training_data"] == 1.0
    assert 0.0 <= metrics["in_key_generated"] <= 1.0
    assert metrics["in_key_chance"] == pytest.approx(7 / 12)
    notes = read_midi(builtin / "melody.mid")
    assert [pitch for pitch, _, _ in notes] == metrics["melody"]
    assert notes[0][0] == 62 and len(notes) == metrics["length"] == 16
    assert (builtin / "piano_roll.png").read_bytes()[:4] == b"\x89PNG"
    assert "notes in key: generated" in stdout


def test_midi_folder_melodies_are_learnt(runs):
    _, from_midi, _ = runs
    metrics = read_metrics(from_midi)
    assert metrics["source"].endswith("midi")
    assert metrics["melodies"] == 8  # 4 files x 32 notes, in pieces of 16
    assert metrics["in_key_training_data"] == 1.0  # D major scale, key estimated as D major


def test_help_lists_flags():
    text = help_text("music")
    for flag in ("--quick", "--out", "--midi", "--seed-note", "--mode"):
        assert flag in text
