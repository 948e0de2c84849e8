"""Atomic file writes: a file is either its old complete self or its new complete self, never half.

Everything the library writes goes to a temporary name beside the target and is renamed over it
(``os.replace`` is atomic on POSIX and Windows), so a full disk or a kill mid-write leaves the last
good file in place. ``DiskFullError`` turns "No space left on device" into one clear message.

Written in place, by design: the memory-mapped feature and activation caches (filled batch by batch; their
atomic ``manifest.json`` counts the rows done, so a kill loses at most the batch in flight and a rerun
resumes), the synthetic catalogues (generated into a folder of their own), and Spark's scratch copies of
image bytes (a worker's temporary files).

New files and folders get the mode a plain ``open(path, "w")`` or ``mkdir`` would give them (0o666 or 0o777
less the user's umask: the kernel applies it when the temporary is created, so the process umask is never
read or changed), and a replaced file keeps its mode, so results are as readable as the user wants them.
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from pathlib import Path
from typing import IO, Callable, Iterator


class DiskFullError(OSError):
    """A write failed because the disk is full; the previous version of the file is kept."""


def _create_file(path: Path) -> None:
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # the kernel masks 0o666 with the umask


def _create_directory(path: Path) -> None:
    os.mkdir(path, 0o777)  # masked with the umask, as mkdir does


def _create_temporary(path: Path, create: Callable[[Path], None], suffix: str = "") -> Path:
    """A new ``.<name>.<random>.partial<suffix>`` beside ``path``, made by ``create`` (which refuses an existing name).

    Unlike ``tempfile.mkstemp``/``mkdtemp`` (0o600/0o700 whatever the umask), ``create`` gives the mode a plain
    write would, and ``suffix`` comes with the name, for writers that insist on an extension.
    """
    for _ in range(100):
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial{suffix}")
        try:
            create(temporary)
        except FileExistsError:
            continue
        return temporary
    raise FileExistsError(f"no free temporary name beside {path}; remove the .{path.name}.*.partial* files left there")


def _keep_mode(temporary: Path, path: Path, created_mode: int) -> None:
    """Give ``temporary`` the mode of the ``path`` it replaces, else the mode it was created with (a writer that
    recreated it, through its own temporary file, may have left 0o600)."""
    mode = path.stat().st_mode & 0o777 if path.exists() else created_mode
    if temporary.stat().st_mode & 0o777 != mode:
        os.chmod(temporary, mode)


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
    temporary = _create_temporary(path, _create_file, path.suffix if suffix is None else suffix)
    created_mode = temporary.stat().st_mode & 0o777
    try:
        yield temporary
        _fsync_file(temporary)
        if temporary.is_file():
            _keep_mode(temporary, path, created_mode)
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
    temporary = _create_temporary(path, _create_directory)
    created_mode = temporary.stat().st_mode & 0o777
    try:
        yield temporary
        _keep_mode(temporary, path, created_mode)
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
