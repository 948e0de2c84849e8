"""The attribute output of a catalogue with attribute columns: one activation per group.

A ``single`` group (one value per product: ``season``, ``colour``) is a softmax over its slice of the
attribute logits, a ``multi`` group (a list: ``tags``) independent sigmoids. The groups sit side by side
on one attribute axis (``LabelSpace.groups`` gives each group's slice), so the head's message passing
reads and feeds all of them through the one attribute branch, as in the paper.
"""
from __future__ import annotations

from typing import Sequence

import keras

from fashion_hier.labels import check_layout

GROUP_ACTIVATIONS = {"single": "softmax", "multi": "sigmoid"}


@keras.saving.register_keras_serializable(package="fashion_hier")
class GroupActivation(keras.layers.Layer):
    """Logits (B, A) in, per-group probabilities (B, A) out: softmax per ``single`` slice, sigmoid per ``multi``."""

    def __init__(self, layout: Sequence[Sequence], **kwargs):
        super().__init__(**kwargs)
        self.layout = check_layout(layout)

    def call(self, logits):
        pieces, start = [], 0
        for kind, size in self.layout:
            block = logits[:, start:start + size]
            pieces.append(keras.ops.softmax(block, axis=-1) if kind == "single" else keras.ops.sigmoid(block))
            start += size
        return pieces[0] if len(pieces) == 1 else keras.ops.concatenate(pieces, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "layout": [list(entry) for entry in self.layout]}
