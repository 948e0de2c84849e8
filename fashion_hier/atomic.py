"""Atomic file writes: a file is either its old complete self or its new complete self, never half.

Everything the library writes goes to a temporary name beside the target and is renamed over it
(``os.replace`` is atomic on POSIX and Windows), so a full disk or a kill mid-write leaves the last
good file in place. ``DiskFullError`` turns "No space left on device" into one clear message.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator


FILE_MODE = 0o644  # what open(path, "w") gives under the usual umask 022


class DiskFullError(OSError):
    """A write failed because the disk is full; the previous version of the file is kept."""


def _temporary_name(path: Path) -> Path:
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle)
    return Path(name)


def _raise_clear(error: OSError, path: Path) -> None:
    if error.errno == errno.ENOSPC:
        raise DiskFullError(errno.ENOSPC, f"no space left on the device while writing {path}; the previous "
                                          f"version is kept — free some space and run the same command again"
                            ) from error
    raise error


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; it is renamed over ``path`` on success.

    For writers that take a file name (``model.save``, ``DataFrame.to_csv``, ``np.savez``). ``suffix``
    gives the temporary file an extension a writer insists on (Keras wants ``.keras``); the default
    keeps the target's own suffix. On any error the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_name(path)
    wanted_suffix = path.suffix if suffix is None else suffix
    if wanted_suffix and temporary.suffix != wanted_suffix:
        renamed = temporary.with_name(temporary.name + wanted_suffix)
        temporary.rename(renamed)
        temporary = renamed
    try:
        yield temporary
        _fsync_file(temporary)
        if temporary.is_file():  # mkstemp makes 0600 files: give the result the mode a plain write would
            os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else FILE_MODE)
        os.replace(temporary, path)
    except OSError as error:
        _remove(temporary)
        _raise_clear(error, path)
    except BaseException:
        _remove(temporary)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", *, encoding: str | None = "utf-8",
                newline: str | None = None) -> Iterator[IO]:
    """``open(path, mode)`` whose content replaces ``path`` only when the block finishes without error."""
    if "b" in mode:
        encoding = None
    with atomic_path(path) as temporary:
        with open(temporary, mode, encoding=encoding, newline=newline) as handle:
            yield handle


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    with atomic_open(path, "w", encoding=encoding) as handle:
        handle.write(text)
    return Path(path)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that replaces the directory ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield temporary
        old = path.with_name(f".{path.name}.old")
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(temporary, path)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as error:
        shutil.rmtree(temporary, ignore_errors=True)
        _raise_clear(error, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def _fsync_file(path: Path) -> None:
    if path.is_file():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
