"""Models that gensim's `save()` wrote, read without running gensim's (or anyone's) code.

gensim's `SaveLoad.save` pickles the model object; arrays over `sep_limit`
(10 MB) go beside it as `<file>.<attribute>.npy` (`.npz` with a `val` entry
when the file name ends in `.gz` / `.bz2`), and an attribute that is itself
a `SaveLoad` object (`wv`, `dv`) stores its own arrays as
`<file>.<attribute>.<its attribute>.npy`. The pickle lists them in
`__numpys`, `__recursive_saveloads` and `__ignoreds` (gensim's
`utils.SaveLoad._load_specials`).

Unpickling normally imports and calls whatever the file names, so it runs
here through `_RestrictedUnpickler`: gensim's model classes map to plain
stand-ins that only hold the saved attributes (no gensim method ever runs,
gensim need not be installed), numpy arrays and dtypes to numpy's own
reconstructors, numpy's random-state objects to a placeholder that is
dropped, and any other name in the file stops the load with an error. The
side `.npy` files are read with `numpy.load(..., allow_pickle=False)`.

The stand-ins are then converted to this package's `KeyedVectors`,
`Word2Vec` and `Doc2Vec`: gensim 4.x's layout (`index_to_key`,
`expandos`, `syn1neg`, `syn1`, `dv`) and gensim 3.x's (`vocab` of `Vocab`
objects, `index2word`, `trainables`, `docvecs`) both.
"""

from __future__ import annotations

import bz2
import gzip
import io
import os
import pickle
from collections import defaultdict
from typing import Any

import numpy as np

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray


class _Saved:
    """A gensim object as saved: its attributes, nothing else (no gensim method runs)."""

    gensim_class = "object"

    def __new__(cls, *args, **kwargs):
        saved = object.__new__(cls)
        saved.__dict__["_args"] = args  # a namedtuple's fields (gensim 3's Doctag)
        return saved

    def __setstate__(self, state) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"<saved gensim {self.gensim_class}>"


class _Dropped:
    """numpy's random-state objects (gensim's `model.random`): not needed, not rebuilt."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state) -> None:
        pass


def _dropped(*args, **kwargs) -> _Dropped:
    return _Dropped()


def _stand_in(name: str) -> type:
    return type(name, (_Saved,), {"gensim_class": name})


_GENSIM_CLASSES = {
    "gensim.models.word2vec": ("Word2Vec", "Word2VecVocab", "Word2VecTrainables", "Vocab"),
    "gensim.models.doc2vec": (
        "Doc2Vec", "Doc2VecVocab", "Doc2VecTrainables", "Doctag", "TaggedDocument",
        "DocvecsArray",
    ),
    "gensim.models.keyedvectors": (
        "KeyedVectors", "Word2VecKeyedVectors", "Doc2VecKeyedVectors", "EuclideanKeyedVectors",
        "Vocab",
    ),
    "gensim.models.deprecated.keyedvectors": ("KeyedVectors", "Vocab"),
}  # fmt: skip

_ALLOWED: dict[tuple[str, str], Any] = {
    (module, name): _stand_in(name) for module, names in _GENSIM_CLASSES.items() for name in names
}
_ALLOWED.update(
    {
        ("gensim.utils", "call_on_class_only"): _dropped,
        ("builtins", "int"): int,
        ("__builtin__", "int"): int,
        ("__builtin__", "long"): int,
        ("builtins", "float"): float,
        ("builtins", "hash"): hash,
        ("__builtin__", "hash"): hash,
        ("builtins", "object"): object,
        ("__builtin__", "object"): object,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("collections", "defaultdict"): defaultdict,
        ("collections", "OrderedDict"): dict,
        ("_codecs", "encode"): lambda text, encoding="utf-8": str(text).encode(encoding),
        ("copy_reg", "_reconstructor"): None,  # set below: copyreg._reconstructor
        ("copyreg", "_reconstructor"): None,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.random._pickle", "__randomstate_ctor"): _dropped,
        ("numpy.random._pickle", "__generator_ctor"): _dropped,
        ("numpy.random._pickle", "__bit_generator_ctor"): _dropped,
        ("numpy.random.mtrand", "RandomState"): _Dropped,
        ("numpy.random", "__RandomState_ctor"): _dropped,
    }
)
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_module, "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(_module, "scalar")] = _multiarray.scalar
for _bit_generator in ("MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64"):
    _ALLOWED[(f"numpy.random._{_bit_generator.lower()}", _bit_generator)] = _Dropped


def _reconstructor(cls, base, state):
    """`copyreg._reconstructor`, limited to what the restricted unpickler itself allowed."""
    if base is object:
        return object.__new__(cls)
    if base in (int, float, dict, set, frozenset):
        return base.__new__(cls, state)
    raise pickle.UnpicklingError(f"copyreg._reconstructor with base {base!r} is not allowed.")


_ALLOWED[("copy_reg", "_reconstructor")] = _reconstructor
_ALLOWED[("copyreg", "_reconstructor")] = _reconstructor


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles gensim's saved models: only gensim's classes (as stand-ins) and numpy arrays."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise pickle.UnpicklingError(
            f"The file names {module}.{name}, which is not one of gensim's Word2Vec, Doc2Vec or "
            "KeyedVectors classes nor a numpy array, so it is not loaded (unpickling it could run "
            "any code). Only models saved by gensim's Word2Vec / Doc2Vec / KeyedVectors are read."
        )


def _open(path: str):
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".bz2"):
        return bz2.open(path, "rb")
    return open(path, "rb")


def is_pickle(path: str | os.PathLike) -> bool:
    """Whether `path` starts like a pickle (after `.gz` / `.bz2` decompression, as gensim's)."""
    try:
        with _open(os.fspath(path)) as f:
            magic = f.read(2)
    except (OSError, EOFError):
        return False
    return magic[:1] == b"\x80" or magic in (b"(d", b"cg", b"cc", b"(i")


def read(path: str | os.PathLike, mmap: str | None = None) -> _Saved:
    """The object gensim's `save()` wrote at `path`, as `_Saved` stand-ins, arrays loaded.

    Args:
        path: the file `save()` was given.
        mmap: None, or a `numpy.load` `mmap_mode` for the arrays stored
            beside the pickle (not for compressed files).
    """
    path = os.fspath(path)
    with _open(path) as f:
        data = f.read()
    try:
        saved = _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as error:
        raise ValueError(f"{path}: {error}") from None
    if not isinstance(saved, _Saved):
        raise ValueError(f"{path} is a pickle of {type(saved).__name__}, not a gensim model.")
    _load_specials(saved, path, mmap, compressed=path.endswith((".gz", ".bz2")))
    return saved


def _load_specials(saved: _Saved, fname: str, mmap, compressed: bool) -> None:
    """gensim's `SaveLoad._load_specials`: arrays stored beside the pickle, recursively."""
    attributes = saved.__dict__
    for name in attributes.get("__recursive_saveloads", []):
        _load_specials(attributes[name], f"{fname}.{name}", mmap, compressed)
    for name in attributes.get("__numpys", []):
        side = f"{fname}.{name}.{'npz' if compressed else 'npy'}"
        if not os.path.exists(side):
            raise ValueError(
                f"{fname} keeps its array {name!r} in {side}, which is missing: copy every "
                f"file named {os.path.basename(fname)}.* that gensim's save() wrote."
            )
        if compressed:
            with np.load(side, allow_pickle=False) as archive:
                attributes[name] = archive["val"]
        else:
            attributes[name] = np.load(side, mmap_mode=mmap, allow_pickle=False)
    if attributes.get("__scipys"):
        raise ValueError(
            f"{fname} holds sparse matrices ({attributes['__scipys']}); gensim's Word2Vec, "
            "Doc2Vec and KeyedVectors have none, so this is another kind of gensim model."
        )
    for name in attributes.get("__ignoreds", []):
        attributes[name] = None


# ---------------------------------------------------------------------- conversion


def saved_class(saved: _Saved) -> str:
    """`"Word2Vec"`, `"Doc2Vec"` or `"KeyedVectors"`: what the saved object is, for our classes."""
    name = saved.gensim_class
    if name in ("Word2Vec", "Doc2Vec"):
        return name
    if name.endswith("KeyedVectors"):
        return "KeyedVectors"
    return name


def _array(value) -> np.ndarray | None:
    return None if value is None else np.asarray(value)


def keyed_vectors(saved: _Saved, keyed_vectors_class):
    """Our `KeyedVectors` from a saved gensim 4 or 3 KeyedVectors (or Doc2Vec's `docvecs`)."""
    a = saved.__dict__
    candidates = (a.get(name) for name in ("vectors", "vectors_docs", "doctag_syn0", "syn0"))
    vectors = next((v for v in candidates if isinstance(v, np.ndarray) and v.ndim == 2), None)
    if vectors is None:
        raise ValueError(f"The saved {saved.gensim_class} holds no vectors.")
    if "index_to_key" in a:  # gensim 4
        keys = list(a["index_to_key"])
        expandos = {k: v for k, v in a.get("expandos", {}).items()}
    else:  # gensim 3: a dict of Vocab objects (or Doctags) and index2word / offset2doctag
        keys, expandos = _gensim3_keys(a, len(vectors))
    keys = [k.decode("utf-8") if isinstance(k, bytes) else k for k in keys]
    kv = keyed_vectors_class(keys, vectors, dtype=vectors.dtype)
    for attr, values in expandos.items():
        kv.expandos[attr] = np.asarray(values) if not isinstance(values, np.ndarray) else values
    lockf = _array(a.get("vectors_lockf"))
    if lockf is not None and lockf.size == len(keys) and not np.all(lockf == 1):
        kv.vectors_lockf = lockf.astype(np.float32)
    elif lockf is not None and lockf.size == 1 and lockf.reshape(-1)[0] != 1:
        kv.vectors_lockf = np.full(len(keys), lockf.reshape(-1)[0], np.float32)
    return kv


def _gensim3_keys(a: dict, rows: int) -> tuple[list, dict]:
    vocab = a.get("vocab") or a.get("doctags") or {}

    def row(entry) -> int:
        fields = entry.__dict__
        return fields.get("index", fields.get("offset", (fields.get("_args") or (0,))[0]))

    keys = a.get("index2word") or a.get("index2entity") or a.get("offset2doctag")
    if not keys and vocab:
        keys = sorted(vocab, key=lambda key: row(vocab[key]))
    keys = list(keys or [])
    if "max_rawint" in a and a["max_rawint"] >= 0:  # plain-int document tags come first
        keys = list(range(a["max_rawint"] + 1)) + keys
    expandos = {}
    entries = [vocab.get(k) for k in keys]
    if entries and all(e is not None and "count" in e.__dict__ for e in entries):
        expandos["count"] = np.array([e.__dict__["count"] for e in entries], np.int64)
    return keys, expandos


def model_settings(saved: _Saved, names: tuple[str, ...]) -> dict:
    """The constructor settings (our `_SETTINGS` names) a saved gensim model carries."""
    a = dict(saved.__dict__)
    for moved in ("vocabulary", "trainables"):  # gensim 3 kept some settings there
        if isinstance(a.get(moved), _Saved):
            for key, value in a[moved].__dict__.items():
                a.setdefault(key, value)
    if "epochs" not in a and "iter" in a:
        a["epochs"] = a["iter"]
    if "vector_size" not in a:
        a["vector_size"] = a.get("layer1_size") or a.get("vector_size")
    settings = {name: a[name] for name in names if name in a}
    if "sg" in a and "dm" in names:
        settings["dm"] = 1 - int(a["sg"])
    if settings.get("comment") is not None and not isinstance(settings["comment"], str):
        settings["comment"] = str(settings["comment"])
    return settings


def output_vectors(saved: _Saved, name: str) -> np.ndarray | None:
    """`syn1neg` or `syn1` of a saved model (gensim 3 kept them in `trainables`)."""
    a = saved.__dict__
    value = a.get(name)
    if value is None and isinstance(a.get("trainables"), _Saved):
        value = a["trainables"].__dict__.get(name)
    return _array(value)
