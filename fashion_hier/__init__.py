"""fashion_hier: category, subcategory and attributes of a product photo, predicted by one Keras model.

Implements the unified structured-output model of Ferreira et al. 2018 (arXiv 1806.09445).
Heavy submodules (TensorFlow) are imported on first use, so `import fashion_hier` stays cheap.
"""
from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "LabelSpace": "fashion_hier.labels",
    "LabelColumns": "fashion_hier.labels",
    "build_model": "fashion_hier.models",
    "Predictor": "fashion_hier.predict",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fashion_hier' has no attribute {name!r}")
