"""Loaders and writers under hostile input and interruption (issue 15, items 4, 5, 6, 8, 9).

Writers are killed mid-write in real child processes (SIGKILL, no clean-up
runs) and the destination must still hold the old file, whole. Loaders get
files that lie about their size, point outside their folder, hold NaN, or
carry malformed metadata, and must refuse each with an error naming the
file and the tensor or field, before allocating anything.
"""

import dataclasses
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from safetensors.numpy import save_file

from keras_recipes import _io
from keras_recipes.embeddings import KeyedVectors, load_vectors
from keras_recipes.llama import checkpoints as ckpt
from keras_recipes.llama.checkpoints import CheckpointError, llama2c, load_hf, load_llama2c
from keras_recipes.tokenizers import Llama2cTokenizer, train_sentencepiece

REPO = Path(__file__).resolve().parents[1]
HEADER = ckpt.Llama2cHeader(
    dim=16, hidden_dim=24, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=32, seq_len=8
)


def random_tensors(header, seed=0):
    rng = np.random.default_rng(seed)
    return {
        name: rng.normal(scale=0.3, size=shape).astype(np.float32)
        for name, shape, _ in llama2c._llama2c_layout(header)
        if not name.startswith("freq_cis")
    }


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


# ---------------------------------------------------------------------------
# Writers killed mid-write
# ---------------------------------------------------------------------------

# The child wraps `open` so that writes pause (and say so) once `pause_after`
# writes are done, as a slow disk would; the parent then SIGKILLs it. The
# llama2.c child imports its module past keras_recipes.llama's __init__, so it
# skips importing Keras.
CHILD = r"""
import builtins, importlib.util, sys, time
import numpy as np

real_open = builtins.open

class SlowFile:
    def __init__(self, f):
        self.f, self.writes = f, 0
    def write(self, data):
        self.writes += 1
        if self.writes == PAUSE_AFTER:
            self.f.flush()
            print("PAUSED", flush=True)
            time.sleep(60)
        return self.f.write(data)
    def __getattr__(self, name):
        return getattr(self.f, name)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self.f.__exit__(*exc)

def slow_open(file, mode="r", *args, **kwargs):
    f = real_open(file, mode, *args, **kwargs)
    return SlowFile(f) if "w" in mode and str(file).startswith(TARGET_DIR) else f

builtins.open = slow_open
"""

VECTORS_CHILD = """
from keras_recipes.embeddings.vectors import KeyedVectors
keys = [f"w{i}" for i in range(200)]
KeyedVectors(keys, np.full((200, 4), 7.0)).save_word2vec_format(TARGET, binary=BINARY)
"""

LLAMA2C_CHILD = """
import types
llama = types.ModuleType("keras_recipes.llama")  # the package, without its __init__
llama.__path__ = ["keras_recipes/llama"]
sys.modules["keras_recipes.llama"] = llama
from keras_recipes.llama.checkpoints import llama2c as ckpt
header = ckpt.Llama2cHeader(16, 24, 2, 4, 2, 32, 8)
tensors = {
    name: np.full(shape, 7.0, np.float32)
    for name, shape, _ in ckpt._llama2c_layout(header) if not name.startswith("freq_cis")
}
ckpt.write_llama2c(TARGET, header, tensors)
"""


def kill_mid_write(body: str, target: Path, pause_after: int, **names) -> None:
    """Runs `body` in a child whose writes into target's folder pause; SIGKILLs it there."""
    settings = dict(TARGET=str(target), TARGET_DIR=str(target.parent), PAUSE_AFTER=pause_after)
    settings.update(names)
    prologue = "".join(f"{key} = {value!r}\n" for key, value in settings.items())
    child = subprocess.Popen(
        [sys.executable, "-c", prologue + CHILD + body],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline()
        assert line.strip() == "PAUSED", child.stderr.read()
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_vector_file_killed_mid_write_keeps_the_old_file_whole(tmp_path, binary):
    path = tmp_path / "vectors.txt"
    old = KeyedVectors(["king", "queen"], np.array([[1.0, 2.0], [3.0, 4.0]]))
    old.save_word2vec_format(path, binary=binary)
    before = path.read_bytes()
    kill_mid_write(VECTORS_CHILD, path, pause_after=100, BINARY=binary)
    assert path.read_bytes() == before
    again = KeyedVectors.load_word2vec_format(path, binary=binary)
    assert again.index_to_key == ["king", "queen"]
    # What the kill left is a hidden temporary that no reader opens, and findable.
    leftovers = _io.stale_partials(path)
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["vectors.txt"]
    assert all(p.name.startswith(".vectors.txt.") for p in leftovers)


def test_llama2c_file_killed_mid_write_keeps_the_old_checkpoint_whole(tmp_path):
    path = tmp_path / "model.bin"
    old = random_tensors(HEADER)
    ckpt.write_llama2c(path, HEADER, old)
    before = path.read_bytes()
    kill_mid_write(LLAMA2C_CHILD, path, pause_after=5)
    assert path.read_bytes() == before
    _, read = ckpt.read_llama2c(path)
    np.testing.assert_array_equal(read["norm.weight"], old["norm.weight"])


def test_save_hf_failing_between_weights_and_config_leaves_the_old_folder(tmp_path, monkeypatch):
    """The pair is replaced as one: never new weights beside an old config."""
    from keras_recipes.llama import build_llama
    from keras_recipes.llama.model import LlamaConfig

    config = LlamaConfig(
        vocab_size=16, dim=8, n_layers=1, n_heads=2, n_kv_heads=2, hidden_dim=16, max_seq_len=8
    )
    directory = ckpt.save_hf(build_llama(config), tmp_path / "hf")
    (directory / "tokenizer.model").write_bytes(b"keep me")
    weights = (directory / "model.safetensors").read_bytes()
    bigger = build_llama(config.replace(vocab_size=24))

    def dumps_then_die(*args, **kwargs):
        raise KeyboardInterrupt  # as a Ctrl-C after the weights, before the config

    fake_json = SimpleNamespace(dumps=dumps_then_die, loads=json.loads)
    monkeypatch.setattr("keras_recipes.llama.checkpoints.hf.json", fake_json)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_hf(bigger, directory)
    monkeypatch.undo()
    assert (directory / "model.safetensors").read_bytes() == weights
    assert json.loads((directory / "config.json").read_text())["vocab_size"] == 16
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # no temporary folder left
    # A successful save replaces both, keeps the tokenizer, drops stale shards.
    (directory / "model-00001-of-00002.safetensors").write_bytes(b"stale")
    ckpt.save_hf(bigger, directory)
    assert json.loads((directory / "config.json").read_text())["vocab_size"] == 24
    assert (directory / "tokenizer.model").read_bytes() == b"keep me"
    assert not (directory / "model-00001-of-00002.safetensors").exists()
    assert load_hf(directory).config.vocab_size == 24


# ---------------------------------------------------------------------------
# Permissions and planted symlinks
# ---------------------------------------------------------------------------


def test_saved_files_follow_the_umask_and_keep_it_when_overwritten(tmp_path, umask_022):
    path = ckpt.write_llama2c(tmp_path / "m.bin", HEADER, random_tensors(HEADER))
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # was 0600 (mkstemp's mode)
    ckpt.write_llama2c(path, HEADER, random_tensors(HEADER, seed=1))
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    vectors = tmp_path / "v.txt"
    KeyedVectors(["a"], np.ones((1, 2))).save_word2vec_format(vectors)
    assert stat.S_IMODE(vectors.stat().st_mode) == 0o644
    with _io.atomic_folder(tmp_path / "folder") as folder:
        (folder / "x").write_text("x")
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o755


def test_tokenizer_saves_never_follow_a_planted_symlink(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    llama2c = Llama2cTokenizer([b"<unk>", b"<s>", b"</s>", b"a"], [0.0, 0.0, 0.0, -1.0])
    sentencepiece = train_sentencepiece(["the cat sat on the mat"] * 50, vocab_size=16)
    for tokenizer, name in ((llama2c, "tokenizer.bin"), (sentencepiece, "tokenizer.model")):
        # The fixed temporary names of the old code, planted by another user.
        (tmp_path / f".{name}.tmp").symlink_to(victim)
        (tmp_path / f"{name}.partial").symlink_to(victim)
        tokenizer.save(tmp_path / name)
        assert victim.read_text() == "precious"
        assert (tmp_path / name).stat().st_size > 0
    assert Llama2cTokenizer.load(tmp_path / "tokenizer.bin").pieces == llama2c.pieces


def test_concurrent_writers_get_their_own_temporaries(tmp_path):
    with _io.atomic_path(tmp_path / "m.keras", suffix=".keras") as a:
        with _io.atomic_path(tmp_path / "m.keras", suffix=".keras") as b:
            assert a != b and a.suffix == b.suffix == ".keras"
            b.write_text("b")
        a.write_text("a")
    assert (tmp_path / "m.keras").read_text() == "a"
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]


def test_writing_over_a_folder_is_a_clear_error(tmp_path):
    (tmp_path / "m.bin").mkdir()
    with pytest.raises(IsADirectoryError, match="m.bin: it is a folder"):
        ckpt.write_llama2c(tmp_path / "m.bin", HEADER, random_tensors(HEADER))


# ---------------------------------------------------------------------------
# Truncated vector files (item 4)
# ---------------------------------------------------------------------------


def test_truncated_vector_file_is_refused_even_with_a_limit(tmp_path):
    path = tmp_path / "vectors.vec"
    keys = [f"w{i}" for i in range(10)]
    KeyedVectors(keys, np.arange(30.0).reshape(10, 3)).save_word2vec_format(path)
    lines = path.read_text().splitlines(keepends=True)
    (tmp_path / "cut.vec").write_text("".join(lines[:5]))  # header + 4 whole rows
    with pytest.raises(ValueError, match=r"cut.vec: the header promises 10 words .* truncated"):
        load_vectors(tmp_path / "cut.vec", limit=8)  # used to return 4 rows silently
    assert len(load_vectors(tmp_path / "cut.vec", limit=4)) == 4  # the rows asked for are whole
    (tmp_path / "mid.vec").write_text("".join(lines[:5]) + lines[5][:4])  # cut inside a row
    with pytest.raises(ValueError, match=r"mid.vec, line 6: .* it is truncated"):
        load_vectors(tmp_path / "mid.vec", limit=8)


# ---------------------------------------------------------------------------
# llama2.c: sizes from the header before anything is allocated (item 5)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 1, 2])
def test_header_promising_a_million_layers_fails_at_once(tmp_path, monkeypatch, version):
    fields = (64, 128, 1_000_000, 4, 4, 100, 32)
    if version == 0:
        head = struct.pack("<7i", *fields)
    else:
        head = struct.pack("<Ii7iBi", ckpt.LLAMA2C_MAGIC, version, *fields, 1, 32)
        head += b"\0" * (256 - len(head))
    path = tmp_path / "huge.bin"
    path.write_bytes(head + b"\0" * 525_000)

    def no_layout(header):
        raise AssertionError("the tensor layout was built before the size check")

    monkeypatch.setattr(llama2c, "_llama2c_layout", no_layout)
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"huge.bin: file is truncated") as error:
        load_llama2c(path)
    assert time.perf_counter() - start < 1.0
    expected = ckpt.llama2c_file_bytes(ckpt.read_llama2c_header(path)[0], len(head))
    assert f"implies {expected:,} bytes" in str(error.value)
    assert f"the file has {path.stat().st_size:,}" in str(error.value)


@pytest.mark.parametrize("version", [0, 1, 2])
@pytest.mark.parametrize("shared", [True, False])
def test_size_from_the_header_equals_the_layouts_sum(version, shared):
    header = dataclasses.replace(
        HEADER, version=version, shared_classifier=shared, group_size=8 * (version == 2)
    )
    offset = 28 if version == 0 else 256
    layout_sum = sum(
        llama2c._tensor_bytes(shape, quantized, header.group_size)
        for _, shape, quantized in llama2c._llama2c_layout(header)
    )
    assert ckpt.llama2c_file_bytes(header, offset) == offset + layout_sum


# ---------------------------------------------------------------------------
# Hugging Face folders: a tiny valid one, then broken copies of it
# ---------------------------------------------------------------------------

TINY_CONFIG = {
    "model_type": "llama",
    "hidden_size": 8,
    "intermediate_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "vocab_size": 16,
    "max_position_embeddings": 8,
    "tie_word_embeddings": True,
}


def tiny_state(seed=0):
    rng = np.random.default_rng(seed)
    shapes = {
        "model.embed_tokens.weight": (16, 8),
        "model.norm.weight": (8,),
        "model.layers.0.input_layernorm.weight": (8,),
        "model.layers.0.post_attention_layernorm.weight": (8,),
        "model.layers.0.self_attn.q_proj.weight": (8, 8),
        "model.layers.0.self_attn.k_proj.weight": (8, 8),
        "model.layers.0.self_attn.v_proj.weight": (8, 8),
        "model.layers.0.self_attn.o_proj.weight": (8, 8),
        "model.layers.0.mlp.gate_proj.weight": (16, 8),
        "model.layers.0.mlp.up_proj.weight": (16, 8),
        "model.layers.0.mlp.down_proj.weight": (8, 16),
    }
    return {name: rng.normal(size=shape).astype(np.float32) for name, shape in shapes.items()}


def hf_folder(path: Path, state=None, config=None) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(TINY_CONFIG if config is None else config))
    save_file(tiny_state() if state is None else state, str(path / "model.safetensors"))
    return path


def sharded(path: Path, shard_name: str) -> Path:
    """A folder whose index sends every tensor to `shard_name`."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(TINY_CONFIG))
    index = {"weight_map": {name: shard_name for name in tiny_state()}}
    (path / "model.safetensors.index.json").write_text(json.dumps(index))
    return path


# ---------------------------------------------------------------------------
# Item 6: files outside the folder
# ---------------------------------------------------------------------------


def test_index_entries_leading_outside_the_folder_are_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    save_file(tiny_state(), str(outside / "x.safetensors"))
    with pytest.raises(CheckpointError, match=r"'../outside/x.safetensors'.*outside the folder"):
        load_hf(sharded(tmp_path / "dotdot", "../outside/x.safetensors"))
    absolute = str(outside / "x.safetensors")
    with pytest.raises(CheckpointError, match=r"a path outside the folder"):
        load_hf(sharded(tmp_path / "absolute", absolute))
    link = sharded(tmp_path / "link", "shard.safetensors")
    (link / "shard.safetensors").symlink_to(outside / "x.safetensors")
    with pytest.raises(CheckpointError, match=r"'shard.safetensors' is a symlink to .*outside"):
        load_hf(link)
    single = tmp_path / "single"
    single.mkdir()
    (single / "config.json").write_text(json.dumps(TINY_CONFIG))
    (single / "model.safetensors").symlink_to(outside / "x.safetensors")
    with pytest.raises(CheckpointError, match=r"single: weights file 'model.safetensors' is a"):
        load_hf(single)


def test_hugging_face_cache_links_into_its_blobs_still_load(tmp_path):
    """The hub cache keeps files in blobs/ and links snapshots/<rev>/ files to them."""
    source = hf_folder(tmp_path / "source")
    repo = tmp_path / "models--tiny"
    (repo / "blobs").mkdir(parents=True)
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (repo / "blobs" / name).write_bytes((source / name).read_bytes())
        (snapshot / name).symlink_to(Path("../../blobs") / name)
    assert load_hf(snapshot).config.dim == 8


# ---------------------------------------------------------------------------
# Item 8: NaN and Inf weights
# ---------------------------------------------------------------------------


def test_llama2c_nan_weights_are_refused_naming_the_tensor(tmp_path, monkeypatch):
    tensors = random_tensors(HEADER)
    tensors["layers.1.feed_forward.w2.weight"][5, 3] = np.nan
    path = ckpt.write_llama2c(tmp_path / "nan.bin", HEADER, tensors)
    with pytest.raises(CheckpointError, match=r"nan.bin: tensor layers.1.feed_forward.w2.weight"):
        load_llama2c(path)
    model = load_llama2c(path, allow_nonfinite=True)
    assert np.isnan(model.blocks[1].feed_forward.w2.kernel.numpy()).sum() == 1
    # Large tensors are checked block by block as they are copied.
    monkeypatch.setattr("keras_recipes.llama.checkpoints.weights.ROWS_BLOCK_BYTES", 2 * 16 * 4)
    tensors = random_tensors(HEADER)
    tensors["tok_embeddings.weight"][-1, 0] = np.inf  # in the last block only
    path = ckpt.write_llama2c(tmp_path / "inf.bin", HEADER, tensors)
    with pytest.raises(CheckpointError, match=r"tok_embeddings.weight holds NaN or Inf"):
        load_llama2c(path)


def test_safetensors_nan_and_inf_are_refused_naming_the_tensor(tmp_path):
    state = tiny_state()
    state["model.norm.weight"][2] = -np.inf
    folder = hf_folder(tmp_path / "inf", state)
    with pytest.raises(CheckpointError, match=r"model.safetensors: tensor norm.weight holds NaN"):
        load_hf(folder)
    assert np.isinf(load_hf(folder, allow_nonfinite=True).norm.scale.numpy()).sum() == 1
    with pytest.raises(CheckpointError, match=r"NaN or Inf"):
        ckpt.load_checkpoint(folder)
    import ml_dtypes

    bf16 = {name: value.astype(ml_dtypes.bfloat16) for name, value in tiny_state().items()}
    bf16["model.layers.0.mlp.up_proj.weight"][3, 1] = np.nan
    with pytest.raises(CheckpointError, match=r"tensor layers.0.feed_forward.w3.weight holds NaN"):
        load_hf(hf_folder(tmp_path / "bf16", bf16))


# ---------------------------------------------------------------------------
# Item 9: malformed metadata
# ---------------------------------------------------------------------------


def without(key):
    return {k: v for k, v in TINY_CONFIG.items() if k != key}


@pytest.mark.parametrize(
    "config_text, message",
    [
        (json.dumps(without("num_attention_heads")), r"num_attention_heads missing"),
        (json.dumps(TINY_CONFIG | {"hidden_size": "8"}), r"field hidden_size is '8' \(str\)"),
        (json.dumps(TINY_CONFIG | {"rms_norm_eps": None, "rope_theta": "1e4"}), "rope_theta"),
        (json.dumps(TINY_CONFIG | {"rope_scaling": [1, 2]}), r"field rope_scaling is \[1, 2\]"),
        ('{"model_type": "llama", "hidden_size": 8,', r"config.json: not valid JSON"),
        ("[1, 2, 3]", r"config.json: holds a JSON list"),
    ],
    ids=["no-heads", "str-size", "str-theta", "list-scaling", "bad-json", "json-list"],
)
def test_malformed_config_names_the_file_and_field(tmp_path, config_text, message):
    folder = hf_folder(tmp_path / "hf")
    (folder / "config.json").write_text(config_text)
    with pytest.raises(CheckpointError, match=message) as error:
        load_hf(folder)
    assert str(folder / "config.json") in str(error.value)


@pytest.mark.parametrize(
    "index_text, message",
    [
        ('{"metadata": {}}', r"index.json: field 'weight_map' is missing"),
        ('{"weight_map": {"lm_head.weight": 3}}', r"weight_map\['lm_head.weight'\] is 3"),
        ('{"weight_map": ', r"index.json: not valid JSON"),
    ],
    ids=["no-weight-map", "int-file", "bad-json"],
)
def test_malformed_index_names_the_file_and_field(tmp_path, index_text, message):
    folder = hf_folder(tmp_path / "hf")
    (folder / "model.safetensors.index.json").write_text(index_text)
    with pytest.raises(CheckpointError, match=message):
        load_hf(folder)


@pytest.mark.parametrize(
    "header, message",
    [
        ([1, 2, 3], r"model.safetensors: the safetensors header is a JSON list"),
        ({"model.norm.weight": [1]}, r"header entry 'model.norm.weight' is a JSON list"),
        (
            {"model.norm.weight": {"dtype": "F32", "shape": ["8"], "data_offsets": [0, 32]}},
            r"'model.norm.weight' has shape \['8'\]",
        ),
        (
            {"model.norm.weight": {"dtype": "F32", "shape": [8], "data_offsets": [32, 0]}},
            r"has data_offsets \[32, 0\]",
        ),
    ],
    ids=["list", "entry-list", "str-shape", "reversed-offsets"],
)
def test_malformed_safetensors_header_names_the_file_and_tensor(tmp_path, header, message):
    folder = hf_folder(tmp_path / "hf")
    text = json.dumps(header).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + b"\0" * 32)
    with pytest.raises(CheckpointError, match=message):
        load_hf(folder)


def test_config_promising_a_huge_model_fails_before_building_it(tmp_path):
    config = TINY_CONFIG | {"num_hidden_layers": 1_000_000, "vocab_size": 10_000_000}
    folder = hf_folder(tmp_path / "hf", config=config)
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"tok_embeddings.weight has shape \(16, 8\)"):
        load_hf(folder)
    config["vocab_size"] = 16
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"missing tensors .*layers.1.attention_norm"):
        load_hf(folder)
    assert time.perf_counter() - start < 2.0


def test_keras_checkpoints_save_atomically_and_refuse_nan_on_load(tmp_path, umask_022):
    from keras_recipes.llama import build_llama
    from keras_recipes.llama.model import LlamaConfig

    config = LlamaConfig(
        vocab_size=16, dim=8, n_layers=1, n_heads=2, n_kv_heads=2, hidden_dim=16, max_seq_len=8
    )
    model = build_llama(config)
    path = tmp_path / "model.keras"
    ckpt.save_checkpoint(model, path)
    ckpt.save_checkpoint(model, path)  # over itself: a unique .keras temporary each time
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]  # no .model.keras.keras
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    model.norm.scale.assign(np.full((8,), np.nan, np.float32))
    ckpt.save_checkpoint(model, path, allow_nonfinite=True)  # refused without it
    with pytest.raises(CheckpointError, match=r"model.keras: weight .*norm.* holds NaN or Inf"):
        ckpt.load_checkpoint(path)
    assert np.isnan(ckpt.load_checkpoint(path, allow_nonfinite=True).norm.scale.numpy()).all()
