"""fashion_hier: category, subcategory and attributes of a product photo, predicted by one Keras model.

Implements the unified structured-output model of Ferreira et al. 2018 (arXiv 1806.09445).
Heavy submodules (TensorFlow) are imported on first use, so `import fashion_hier` stays cheap.

Loading a saved model: Keras finds custom classes (``HierarchicalClassifier``, the ``Preprocess``
layer, the weighted losses) by registered name, so the modules defining them must be imported before
``keras.saving.load_model``. ``import fashion_hier`` arranges that without importing TensorFlow
itself: if keras is already imported, the registering modules are imported now; otherwise a one-shot
import hook imports them right after keras is.

TensorFlow's C++ log lines: ``import fashion_hier`` sets ``TF_CPP_MIN_LOG_LEVEL=3`` (fatal errors only) unless
the environment already has a level, and a second one-shot hook runs TensorFlow's own import with the lines
its libraries print while loading dropped, which no variable stops (``fashion_hier.logs`` has the evidence).
Both act only if TensorFlow is not imported yet.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from importlib import import_module

from fashion_hier import logs

__version__ = "0.3.0.dev0"  # the one definition: setup.cfg reads it (attr:)

_LAZY = {
    "LabelSpace": "fashion_hier.labels",
    "LabelColumns": "fashion_hier.labels",
    "build_model": "fashion_hier.models",
    "HierarchicalClassifier": "fashion_hier.task",
    "Predictor": "fashion_hier.predict",
    "RunDir": "fashion_hier.rundir",
}
REGISTERING_MODULES = ("fashion_hier.losses", "fashion_hier.models", "fashion_hier.task")

__all__ = ["__version__", "register_keras_objects", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fashion_hier' has no attribute {name!r}")


def register_keras_objects() -> None:
    """Import the modules whose Keras classes ``keras.saving.load_model`` looks up by registered name."""
    for module in REGISTERING_MODULES:
        import_module(module)


class _AroundFirstImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: runs the first import of module ``name`` through ``around(exec_module)``."""

    def __init__(self, name: str, around):
        self.name, self.around = name, around

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # one shot; also lets find_spec below see the real finders
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader.exec_module = self.around(spec.loader.exec_module)
        return spec


def _then_register(exec_module):
    def run_keras(module):
        exec_module(module)
        register_keras_objects()

    return run_keras


def _native_load_lines_dropped(exec_module):
    def run_tensorflow(module):
        with logs.native_load_lines_dropped():
            exec_module(module)

    return run_tensorflow


def _around_first_import(name: str, around) -> None:
    if not any(isinstance(finder, _AroundFirstImport) and finder.name == name for finder in sys.meta_path):
        sys.meta_path.insert(0, _AroundFirstImport(name, around))


if "keras" in sys.modules:
    register_keras_objects()
else:
    _around_first_import("keras", _then_register)
if "tensorflow" not in sys.modules:
    logs.quiet_tensorflow_by_default()
    _around_first_import("tensorflow", _native_load_lines_dropped)
