"""The errors that mean "the user must change something": one owner, no TensorFlow, imported by the CLI.

``fashion_hier.cli`` turns each of these into one line on stderr and exit code 2. Modules raise them at the
boundary where the bad thing is found, naming the file (or argument) and what to do.
"""
from __future__ import annotations

import os


class ConfigError(ValueError):
    """A config key or value that does not fit: the message names the key and what is expected."""


class RunDirectoryError(RuntimeError):
    """The run directory holds something this call must not continue, overwrite or remove."""


class RunLockedError(RunDirectoryError):
    """Another process holds the run directory's lock (it is training that run now)."""


class DamagedFileError(ValueError):
    """A file the library wrote earlier (model, cache, manifest, index, backup) cannot be read back.

    The message names the file, what is wrong with it and what to do (rerun, delete the cache).
    """

    def __init__(self, path: str | os.PathLike, problem: str, remedy: str):
        self.path = str(path)
        self.problem = problem
        self.remedy = remedy
        super().__init__(f"{self.path} is damaged ({problem}); {remedy}")
