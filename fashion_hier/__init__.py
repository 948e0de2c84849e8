"""fashion_hier: category, subcategory and attributes of a product photo, predicted by one Keras model.

Implements the unified structured-output model of Ferreira et al. 2018 (arXiv 1806.09445).
Heavy submodules (TensorFlow) are imported on first use, so `import fashion_hier` stays cheap.

Loading a saved model: Keras finds custom classes (``HierarchicalClassifier``, the ``Preprocess``
layer, the weighted losses) by registered name, so the modules defining them must be imported before
``keras.saving.load_model``. ``import fashion_hier`` arranges that without importing TensorFlow
itself: if keras is already imported, the registering modules are imported now; otherwise a one-shot
import hook imports them right after keras is (the only thing the hook does).
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from importlib import import_module

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


class _RegisterAfterKerasImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when ``keras`` is first imported, runs ``register_keras_objects`` after it."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)  # one shot; also lets find_spec below see the real finders
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run_keras = spec.loader.exec_module

        def exec_module(module):
            run_keras(module)
            register_keras_objects()

        spec.loader.exec_module = exec_module
        return spec


if "keras" in sys.modules:
    register_keras_objects()
elif not any(isinstance(finder, _RegisterAfterKerasImport) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKerasImport())
