"""Frozen-backbone features: a resumable cache (``cache``), heads trained on it (``head_training``) and
scores read back from it (``scoring``).

The names of the former single module ``fashion_hier.features`` are re-exported here, lazily, so that
importing ``fashion_hier.features.scoring`` (what ``evaluate`` does) loads no trainer.
"""
from importlib import import_module

_LAZY = {
    **dict.fromkeys(("FEATURES_FILE", "HEAD_FILE", "MANIFEST_FILE", "PATHS_FILE", "RUN_FEATURES_FILE", "FeatureCache",
                     "FeatureCacheMismatch", "default_cache_dir", "extract_features", "feature_extractor",
                     "load_feature_cache", "weights_identity", "ensure_feature_caches"), "fashion_hier.features.cache"),
    **dict.fromkeys(("fit_head", "train_head_on_features"), "fashion_hier.features.head_training"),
    **dict.fromkeys(("predict_from_features", "scores_from_feature_cache"), "fashion_hier.features.scoring"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fashion_hier.features' has no attribute {name!r}")
