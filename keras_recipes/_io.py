"""Atomic writes: a file or a folder appears whole at its final path, or not at all.

Everything this package writes for users (checkpoints, vector files,
tokenizers) goes through these helpers, so a kill, a full disk or an
exception never leaves a half-written file where a tool reads it:

- the data goes to a temporary name in the destination's folder, unique per
  call and created exclusively (`O_EXCL`), so two writers never share one
  and a symlink planted at a predictable name is never followed;
- the data is flushed to disk (`fsync`), then renamed onto the final name
  (`os.replace`, atomic on POSIX and Windows), then the folder is synced;
- permissions follow the umask (`0666 & ~umask` for files, `0777 & ~umask`
  for folders), as a plain `open(path, "w")` would give, not the `0600`
  `tempfile` gives its files;
- on an error the temporary is removed. After a kill -9 it stays behind as
  `.<name>.<random>.partial` beside the destination, a name no reader
  opens, easy to find (`stale_partials`) and safe to delete.

Examples:

>>> import tempfile
>>> from pathlib import Path
>>> import numpy as np
>>> from keras_recipes._io import atomic_folder, atomic_path, atomic_write
>>> scratch = tempfile.TemporaryDirectory()
>>> out = Path(scratch.name)
>>> with atomic_write(out / "vectors.txt", "w") as f:  # an open file
...     _ = f.write("2 3\\n")
>>> # a path a library writes (`model.save(tmp)` with suffix=".keras" alike)
>>> with atomic_path(out / "weights.npy", suffix=".npy") as tmp:
...     np.save(tmp, np.zeros(3))
>>> with atomic_folder(out / "hf_model") as tmp:  # a folder, complete or absent
...     _ = (tmp / "config.json").write_text("{}")
>>> sorted(str(p.relative_to(out)) for p in out.rglob("*"))
['hf_model', 'hf_model/config.json', 'vectors.txt', 'weights.npy']
>>> scratch.cleanup()
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

PARTIAL_SUFFIX = ".partial"


def umask() -> int:
    """The process umask, read without changing it where the OS allows."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # No /proc: the classic read-and-restore.
    os.umask(mask)
    return mask


def _fsync_path(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return  # Windows cannot open folders; nothing to sync there.
    try:
        os.fsync(fd)
    except OSError:
        pass  # Some filesystems (and folders on some OSes) refuse fsync.
    finally:
        os.close(fd)


def _temporary_error(path: Path, error: OSError) -> OSError:
    return type(error)(
        error.errno,
        f"Cannot write {path}: creating a temporary file in {path.parent} failed "
        f"({error.strerror}). Check that the folder exists and is writable.",
    )


def _prepare(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise IsADirectoryError(
            errno.EISDIR, f"Cannot write {path}: it is a folder. Give a file name inside it."
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _temporary_error(path, error) from None
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A fresh temporary path beside `path`, renamed onto `path` if the block succeeds.

    For libraries that write to a path themselves (`safetensors.save_file`,
    `keras.Model.save`). The temporary file exists (empty, created
    exclusively) when the block starts; the block may overwrite it.

    Args:
        path: the destination file. Its folder is created if needed. A
            symlink at `path` is replaced, never followed.
        suffix: str. The temporary name ends in `.partial` + `suffix`, for
            writers that insist on an extension (`".keras"`).

    Raises:
        IsADirectoryError: `path` is a folder.
        OSError: the folder cannot be created or written, with the path.
    """
    path = _prepare(path)
    try:
        fd, name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX + suffix, dir=path.parent
        )
    except OSError as error:
        raise _temporary_error(path, error) from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync_path(tmp)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
        _fsync_path(path.parent, directory=True)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike, mode: str = "wb", encoding: str | None = None
) -> Iterator[IO]:
    """An open file whose contents replace `path` only once fully written and synced.

    Args:
        path: the destination file (see `atomic_path`).
        mode: `"wb"` (default) or `"w"` (text).
        encoding: for text mode; defaults to UTF-8.

    Examples:

    >>> import tempfile
    >>> scratch = tempfile.TemporaryDirectory()
    >>> path = Path(scratch.name) / "vocab.txt"
    >>> with atomic_write(path, "w") as f:
    ...     _ = f.write("hello\\n")
    >>> path.read_text()
    'hello\\n'
    >>> scratch.cleanup()
    """
    if mode not in ("w", "wb"):
        raise ValueError(
            f"atomic_write writes whole files: mode must be 'w' or 'wb', got {mode!r}."
        )
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def _exchange(a: Path, b: Path) -> bool:
    """Swaps two folders in one atomic step (Linux `renameat2(RENAME_EXCHANGE)`)."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


@contextlib.contextmanager
def atomic_folder(
    path: str | os.PathLike, carry_over: Callable[[str], bool] | None = None
) -> Iterator[Path]:
    """A fresh temporary folder beside `path` that replaces `path` whole if the block succeeds.

    Readers see the old folder or the new one, never a mix: the files are
    synced, then the new folder takes the old one's place in one atomic swap
    (`renameat2` on Linux; elsewhere two renames, between which `path` is
    briefly absent and the old folder sits at `.<name>.<random>.old`).

    Args:
        path: the destination folder. A symlink to a folder is resolved and
            its target replaced.
        carry_over: optional `name -> bool`. Entries of an existing folder
            at `path` whose name it accepts are hard-linked (or copied)
            into the new folder, unless the block wrote that name, so files
            the writer does not own (a tokenizer beside a checkpoint)
            survive the replacement.

    Raises:
        NotADirectoryError: `path` exists and is not a folder.
    """
    path = Path(os.path.abspath(path))  # "." has no name and no parent to swap in
    if path.is_symlink() and path.is_dir():
        path = path.resolve()
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR, f"Cannot write the folder {path}: a file of that name exists."
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(
            tempfile.mkdtemp(prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX, dir=path.parent)
        )
    except OSError as error:
        raise _temporary_error(path, error) from None
    try:
        yield tmp
        if carry_over is not None and path.is_dir():
            for entry in os.scandir(path):
                target = tmp / entry.name
                if not carry_over(entry.name) or os.path.lexists(target):
                    continue
                if entry.is_symlink():
                    os.symlink(os.readlink(entry.path), target)
                elif entry.is_dir():
                    shutil.copytree(entry.path, target, symlinks=True, copy_function=_link_or_copy)
                else:
                    _link_or_copy(entry.path, target)
        for root, _, files in os.walk(tmp):
            for name in files:
                _fsync_path(Path(root) / name)
            _fsync_path(Path(root), directory=True)
        os.chmod(tmp, 0o777 & ~umask())
        _swap_into_place(tmp, path)
        _fsync_path(path.parent, directory=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap_into_place(new: Path, path: Path) -> None:
    """Puts folder `new` at `path`; a folder already there ends up at `new`."""
    for _ in range(10):  # Another writer may move `path` between our steps.
        if not os.path.lexists(path):
            try:
                os.rename(new, path)
                return
            except OSError as error:
                if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                continue
        if _exchange(new, path):
            return
        aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
        try:
            os.rename(path, aside)  # replaces the empty `aside`
        except FileNotFoundError:
            aside.rmdir()
            continue
        try:
            os.rename(new, path)
        except OSError:
            os.rename(aside, path)  # Put the old folder back before giving up.
            raise
        os.rename(aside, new)
        return
    raise OSError(errno.EBUSY, f"Cannot replace {path}: other writers keep changing it.")


def stale_partials(path: str | os.PathLike) -> list[Path]:
    """Temporaries a killed writer left beside `path` (`.<name>.*.partial*`), oldest first."""
    path = Path(path)
    found = [
        p
        for p in path.parent.glob(f".{path.name}.*")
        if PARTIAL_SUFFIX in p.name[len(path.name) + 2 :] or p.name.endswith(".old")
    ]
    return sorted(found, key=lambda p: p.stat().st_mtime)
