"""Temperature scaling as a layer, so a calibrated task answers calibrated scores wherever it runs.

Guo et al. 2017: dividing the logits by one fitted temperature T per output makes the top-label
probabilities mean what they say, without moving any arg-max or ranking. The network outputs
probabilities, so the logits are taken back from them exactly as ``fashion_hier.metrics.calibration``
does (``log p`` for a softmax level, ``log(p / (1 - p))`` per column for sigmoid attributes); living
inside ``HierarchicalClassifier``, the scaling reaches ``Predictor``, Spark and the exports alike.
"""
from __future__ import annotations

import keras
import numpy as np

ACTIVATIONS = ("softmax", "sigmoid")


@keras.saving.register_keras_serializable(package="fashion_hier")
class TemperatureScaling(keras.layers.Layer):
    """Probabilities in, probabilities scaled by ``temperature`` out (T = 1: returned unchanged)."""

    def __init__(self, temperature: float = 1.0, activation: str = "softmax", **kwargs):
        super().__init__(**kwargs)
        temperature = float(temperature)
        if not (np.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.temperature = temperature
        self.activation = activation

    def call(self, probabilities):
        if self.temperature == 1.0:
            return probabilities
        scores = keras.ops.cast(probabilities, "float32")
        info = np.finfo(np.float32)
        if self.activation == "softmax":
            logits = keras.ops.log(keras.ops.maximum(scores, float(info.tiny)))
            return keras.ops.softmax(logits / self.temperature, axis=-1)
        scores = keras.ops.clip(scores, float(info.eps), 1.0 - float(info.eps))
        logits = keras.ops.log(scores) - keras.ops.log1p(-scores)
        return keras.ops.sigmoid(logits / self.temperature)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "temperature": self.temperature, "activation": self.activation}
