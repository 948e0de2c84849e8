"""Image embeddings from a trained model: the pooled backbone features or the head's subcategory state."""
from __future__ import annotations

import logging
import os
from typing import Sequence

import numpy as np

from fashion_hier.predict import Predictor

logger = logging.getLogger(__name__)

EMBEDDINGS = ("pooled", "head")
HEAD_STATE_LAYER = "subcategory_sum"  # the message-passing head's subcategory state (models/heads.py)


class Embedder:
    """L2-normalised embeddings of images (paths or arrays) from a ``Predictor``'s model."""

    def __init__(self, predictor: Predictor, embedding: str = "pooled"):
        import keras

        if embedding not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {embedding!r}")
        self.predictor, self.embedding = predictor, embedding
        from fashion_hier.models import network_of

        model = network_of(predictor.model)  # the build_model graph, where the named head layers live
        if embedding == "pooled":
            output = _pooled_features(model)
        else:
            try:
                output = model.get_layer(HEAD_STATE_LAYER).output
            except ValueError:
                raise ValueError(f"model {model.name!r} has no layer {HEAD_STATE_LAYER!r} (the message-passing "
                                 f"head's subcategory state); use embedding='pooled'") from None
        self.model = keras.Model(model.inputs, output, name=f"{embedding}_embedding")
        self.forward = predictor.compile(self.model)  # the predictor's engine (Keras, or OpenVINO at its precision)

    @property
    def dimension(self) -> int:
        return int(self.model.output_shape[-1])

    def embed_images(self, images: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
        """(N, d) float32 unit vectors of an (N, h, w, 3) RGB 0..255 array."""
        chunks = [np.asarray(self.forward.predict_on_batch(images[start:start + batch_size]), np.float32)
                  for start in range(0, len(images), batch_size)]
        vectors = np.concatenate(chunks) if chunks else np.zeros((0, self.dimension), np.float32)
        return normalise(vectors)

    def embed_paths(self, paths: Sequence[str | os.PathLike], *, batch_size: int = 32
                    ) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
        """Embeddings of the readable images: ``(vectors, their paths, [(unreadable path, reason)])``."""
        from fashion_hier.data.images import ImageReadError, load_image

        vectors, kept, unreadable = [], [], []
        size, resize = self.predictor.image_size, self.predictor.resize
        for start in range(0, len(paths), batch_size):
            batch, names = [], []
            for path in paths[start:start + batch_size]:
                try:
                    batch.append(load_image(path, size, resize=resize))
                    names.append(str(path))
                except ImageReadError as error:
                    logger.warning("skipped %s", error)
                    unreadable.append((str(path), error.reason))
            if batch:
                vectors.append(self.embed_images(np.stack(batch), batch_size=batch_size))
                kept += names
        matrix = np.concatenate(vectors) if vectors else np.zeros((0, self.dimension), np.float32)
        return matrix, kept, unreadable


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), so inner product = cosine similarity."""
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def _pooled_features(model):
    """The outer graph's backbone output: the input of the first layer after the ``backbone`` sub-model.

    (``get_layer("backbone").output`` is the nested model's own tensor, not connected to ``model.inputs``.)
    """
    from fashion_hier.models.factory import backbone_model

    backbone = backbone_model(model)
    width = backbone.output_shape[-1]
    layers = model.layers
    for layer in layers[layers.index(backbone) + 1:]:
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        for tensor in inputs:
            if tuple(tensor.shape) == (None, width):
                return tensor
    raise ValueError(f"model {model.name!r}: no layer reads the backbone's pooled features")
