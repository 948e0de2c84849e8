"""Partial fine-tuning on a CPU: cache a backbone's activations at a cut layer, train the layers above it.

``extract_activations`` / ``load_activation_cache`` (``activations.py``) keep the cut-layer output of
every image and its mirror image; ``finetune_from_cache`` (``partial.py``) trains the backbone
layers above the cut together with the head on that cache and returns the assembled full image model.
"""
from fashion_hier.finetune.activations import (DEFAULT_CUT, ActivationCache, ActivationCacheMismatch,
                                               cut_extractor, extract_activations, load_activation_cache)

__all__ = ["DEFAULT_CUT", "ActivationCache", "ActivationCacheMismatch", "cut_extractor", "extract_activations",
           "load_activation_cache"]
