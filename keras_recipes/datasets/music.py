"""Melodies generated from simple rules, and MIDI files for them.

`generate_melodies` writes melodies the way a beginner composes: start on
the key's tonic, then string together four-note figures (a scale run up or
down, a broken chord up or down, or the melody's own motif, repeated at
other heights), stay in the key's scale, and end on the tonic. Keys are
major or natural minor on any tonic from C4 to B4. Every note of a generated
melody is in key, so `in_key_fraction` of a model's output says how well it
learnt the rules (a random note is in key 7 times out of 12).

`write_midi` and `read_midi` write and read standard MIDI files (type 0,
one track) with `mido`.

Pitches are MIDI note numbers (60 is middle C, C4).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
TONICS = tuple(range(60, 72))  # C4 .. B4
LOWEST, HIGHEST = 55, 91  # every generated note lies in [LOWEST, HIGHEST]
NUM_PITCHES = HIGHEST - LOWEST + 1
FIGURES = ("scale_up", "scale_down", "arpeggio_up", "arpeggio_down", "motif")


def note_name(pitch: int) -> str:
    """`60 -> "C4"`, `61 -> "C#4"`."""
    return f"{NOTE_NAMES[int(pitch) % 12]}{int(pitch) // 12 - 1}"


def parse_note(name: str) -> int:
    """`"C4" -> 60`, `"f#3" -> 54`, `"Bb4" -> 70`; a MIDI number as text is accepted too."""
    text = str(name).strip()
    if text.isdigit():
        return int(text)
    flats = {"DB": "C#", "EB": "D#", "GB": "F#", "AB": "G#", "BB": "A#"}
    letters = text[:-1].upper()
    letters = flats.get(letters, letters)
    octave = text[-1:]
    if letters not in NOTE_NAMES or not octave.isdigit():
        raise ValueError(
            f"Cannot read the note {name!r}: write a letter, an optional # or b, and an "
            "octave, like C4, F#3 or Bb4 (or a MIDI number such as 60)."
        )
    return NOTE_NAMES.index(letters) + 12 * (int(octave) + 1)


def degree_to_pitch(degree: int, tonic: int, mode: str) -> int:
    """The pitch of a scale degree (0 = tonic, 7 = tonic an octave up, -1 = leading note below)."""
    octave, step = divmod(int(degree), 7)
    return tonic + 12 * octave + SCALES[mode][step]


def in_key_fraction(pitches, tonic: int, mode: str) -> float:
    """The fraction of `pitches` whose pitch class is in the scale of `tonic` `mode`."""
    if mode not in SCALES:
        raise ValueError(f"`mode` must be one of {list(SCALES)}, got {mode!r}.")
    pitches = np.asarray(pitches, dtype=int).reshape(-1)
    if pitches.size == 0:
        raise ValueError("No pitches given: pass at least one note.")
    classes = {(tonic + step) % 12 for step in SCALES[mode]}
    return float(np.mean([p % 12 in classes for p in pitches]))


def _figure(name: str, start: int, motif: list[int]) -> list[int]:
    if name == "scale_up":
        return [start, start + 1, start + 2, start + 3]
    if name == "scale_down":
        return [start, start - 1, start - 2, start - 3]
    if name == "arpeggio_up":
        return [start, start + 2, start + 4, start + 7]
    if name == "arpeggio_down":
        return [start + 7, start + 4, start + 2, start]
    return [start + step for step in motif]


def generate_melody(tonic: int, mode: str, length: int, rng: np.random.Generator) -> np.ndarray:
    """One rule-made melody of `length` notes in `tonic` `mode`, as MIDI pitches."""
    if length < 2 or length % 4:
        raise ValueError(f"`length` must be a multiple of 4 (four-note figures), got {length}.")
    motif = [0, *rng.choice([-2, -1, 1, 2, 3], size=3)]
    degrees: list[int] = []
    current = 0
    while len(degrees) < length:
        # the first figure starts on the tonic; "arpeggio_down" would start an octave up
        choices = FIGURES if degrees else ("scale_up", "scale_down", "arpeggio_up", "motif")
        figure = _figure(choices[rng.integers(len(choices))], current, motif)
        figure = [int(np.clip(d, -2, 11)) for d in figure]
        degrees.extend(figure)
        current = int(np.clip(figure[-1] + rng.choice([-2, -1, 1, 2]), -1, 7))
    degrees = degrees[:length]
    degrees[-1] = 0 if degrees[-2] < 4 else 7  # end on the nearer tonic
    return np.array([degree_to_pitch(d, tonic, mode) for d in degrees], dtype="int32")


def generate_melodies(
    num_melodies: int, length: int = 32, seed: int = 0
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Rule-made melodies and their keys.

    Args:
        num_melodies: int. How many melodies.
        length: int. Notes per melody, a multiple of 4. Defaults to `32`.
        seed: int. Random seed.

    Returns:
        `(melodies, keys)`: an int32 array `(num_melodies, length)` of MIDI
        pitches, each melody starting on its tonic, and a list of
        `(tonic, mode)`.

    Examples:

    >>> melodies, keys = generate_melodies(100, length=16)
    >>> melodies.shape, in_key_fraction(melodies[0], *keys[0])
    ((100, 16), 1.0)
    """
    if isinstance(num_melodies, bool) or not isinstance(num_melodies, int) or num_melodies < 1:
        raise ValueError(f"`num_melodies` must be a positive int, got {num_melodies!r}.")
    rng = np.random.default_rng(seed)
    melodies, keys = [], []
    for _ in range(num_melodies):
        tonic = int(rng.choice(TONICS))
        mode = str(rng.choice(list(SCALES)))
        melodies.append(generate_melody(tonic, mode, length, rng))
        keys.append((tonic, mode))
    return np.stack(melodies), keys


def write_midi(
    pitches,
    path: str | os.PathLike,
    tempo_bpm: float = 120.0,
    beats_per_note: float = 0.5,
    velocity: int = 80,
    program: int = 0,
) -> Path:
    """Writes a melody as a standard MIDI file (type 0, one track, channel 0).

    Args:
        pitches: sequence of int. MIDI note numbers, 0-127.
        path: where to write the `.mid` file.
        tempo_bpm: float. Tempo in quarter notes per minute. Defaults to `120`.
        beats_per_note: float. Length of each note in quarter notes; the last
            note is held twice as long. Defaults to `0.5` (eighth notes).
        velocity: int. Loudness, 1-127. Defaults to `80`.
        program: int. General MIDI instrument, 0 is the acoustic grand piano.

    Returns:
        The path written.
    """
    import mido

    pitches = [int(p) for p in np.asarray(pitches).reshape(-1)]
    if not pitches or min(pitches) < 0 or max(pitches) > 127:
        raise ValueError(f"MIDI pitches must be 0-127 and at least one; got {pitches[:10]}...")
    midi = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    track.append(mido.Message("program_change", program=program, channel=0, time=0))
    ticks = round(480 * beats_per_note)
    for i, pitch in enumerate(pitches):
        held = ticks * (2 if i == len(pitches) - 1 else 1)
        track.append(mido.Message("note_on", note=pitch, velocity=velocity, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=held))
    track.append(mido.MetaMessage("end_of_track", time=0))
    path = Path(path)
    midi.save(path)
    return path


def read_midi(path: str | os.PathLike) -> list[tuple[int, int, int]]:
    """The notes of a MIDI file as `(pitch, start_tick, duration_ticks)`, in start order.

    A `note_on` with velocity 0 counts as a `note_off`, as the MIDI standard says.
    """
    import mido

    notes, sounding = [], {}
    for track in mido.MidiFile(path).tracks:
        now = 0
        for message in track:
            now += message.time
            if message.type == "note_on" and message.velocity > 0:
                sounding[(message.channel, message.note)] = now
            elif message.type in ("note_off", "note_on"):
                start = sounding.pop((message.channel, message.note), None)
                if start is not None:
                    notes.append((message.note, start, now - start))
    return sorted(notes, key=lambda note: (note[1], note[0]))


def estimate_key(pitches) -> tuple[int, str]:
    """The `(tonic pitch class, mode)` whose scale holds the most of `pitches`.

    Ties go to the key whose tonic is played most, then to major. A simple
    scale-fit, enough to label melodies for training (not a full key finder).
    """
    classes = np.bincount(np.asarray(pitches, dtype=int).reshape(-1) % 12, minlength=12)
    best = max(
        ((tonic, mode) for mode in SCALES for tonic in range(12)),
        key=lambda key: (
            sum(classes[(key[0] + s) % 12] for s in SCALES[key[1]]),
            classes[key[0]],
            key[1] == "major",
        ),
    )
    return best


def midi_melodies(
    directory: str | os.PathLike, length: int = 32
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Melodies cut from the `*.mid` / `*.midi` files of a folder, with their keys.

    Each file's notes are read in time order keeping the highest note of any
    chord (the tune, usually), then cut into pieces of `length` notes. Each
    piece gets its key from `estimate_key`, is transposed by octaves so it
    starts within C4-B4, and notes still outside `[LOWEST, HIGHEST]` are
    moved by octaves into it. The key's tonic is returned as the pitch of
    that class in C4-B4.

    Returns:
        `(melodies, keys)` as from `generate_melodies`.
    """
    files = sorted(p for p in Path(directory).rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    if not files:
        raise ValueError(f"No .mid or .midi files in {str(directory)!r}.")
    melodies, keys = [], []
    for file in files:
        top: dict[int, int] = {}
        for pitch, start, _ in read_midi(file):
            top[start] = max(pitch, top.get(start, 0))
        notes = [top[t] for t in sorted(top)]
        for i in range(0, len(notes) - length + 1, length):
            piece = np.array(notes[i : i + length])
            piece = piece + 12 * ((TONICS[-1] - piece[0]) // 12)  # first note into C4-B4
            while (piece < LOWEST).any() or (piece > HIGHEST).any():
                piece = np.where(piece < LOWEST, piece + 12, piece)
                piece = np.where(piece > HIGHEST, piece - 12, piece)
            tonic_class, mode = estimate_key(piece)
            melodies.append(piece.astype("int32"))
            keys.append((TONICS[0] + (tonic_class - TONICS[0]) % 12, mode))
    if not melodies:
        raise ValueError(
            f"The MIDI files in {str(directory)!r} hold no run of {length} notes; "
            "use a smaller --length or longer files."
        )
    return np.stack(melodies), keys
