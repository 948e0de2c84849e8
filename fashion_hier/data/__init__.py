"""Data layer: catalogue reading and cleaning, splits, synthetic catalogue, loader, augmentation.

Names are imported on first use (module ``__getattr__``), so reading a catalogue does not
import TensorFlow and each module can be added without touching the others.
"""
from importlib import import_module

_LAZY = {
    "read_catalog": "fashion_hier.data.catalog",
    "Catalog": "fashion_hier.data.catalog",
    "CatalogReport": "fashion_hier.data.catalog",
    "CatalogError": "fashion_hier.data.csvread",
    "UnreadableImages": "fashion_hier.data.unreadable",
    "UnreadableImage": "fashion_hier.data.unreadable",
    "write_unreadable_report": "fashion_hier.data.unreadable",
    "read_images": "fashion_hier.data.images",
    "Splits": "fashion_hier.data.split",
    "make_synthetic_catalog": "fashion_hier.data.synthetic",
    "load_image": "fashion_hier.data.images",
    "load_images": "fashion_hier.data.images",
    "ImageReadError": "fashion_hier.data.images",
    "ImageTooLargeError": "fashion_hier.data.images",
    "FashionSequence": "fashion_hier.data.sequence",
    "LoadedBatch": "fashion_hier.data.sequence",
    "make_dataset": "fashion_hier.data.tfdata",
    "spread_into_subfolders": "fashion_hier.data.layout",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fashion_hier.data' has no attribute {name!r}")
