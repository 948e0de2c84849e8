"""Frozen-backbone features: a resumable cache (``cache``) and heads trained on it (``head_training``).

The names of the former single module ``fashion_hier.features`` are re-exported here.
"""
from fashion_hier.features.cache import (
    FEATURES_FILE,
    HEAD_FILE,
    MANIFEST_FILE,
    PATHS_FILE,
    RUN_FEATURES_FILE,
    FeatureCache,
    FeatureCacheMismatch,
    default_cache_dir,
    extract_features,
    feature_extractor,
    load_feature_cache,
    weights_identity,
)
from fashion_hier.features.cli import main
from fashion_hier.features.head_training import (
    fit_head,
    predict_from_features,
    scores_from_feature_cache,
    train_head_on_features,
)

__all__ = ["FEATURES_FILE", "HEAD_FILE", "MANIFEST_FILE", "PATHS_FILE", "RUN_FEATURES_FILE", "FeatureCache",
           "FeatureCacheMismatch", "default_cache_dir", "extract_features", "feature_extractor", "fit_head",
           "load_feature_cache", "main", "predict_from_features", "scores_from_feature_cache",
           "train_head_on_features", "weights_identity"]
