"""The backbone's input preprocessing as a layer, so the saved model takes raw RGB 0..255 pixels."""
from __future__ import annotations

import keras

PREPROCESS_MODES = ("caffe", "tf", "torch", "none")


@keras.saving.register_keras_serializable(package="fashion_hier")
class Preprocess(keras.layers.Layer):
    """Raw RGB 0..255 -> what a ``keras.applications`` backbone expects.

    ``mode`` is that of ``keras.applications.imagenet_utils.preprocess_input`` (which does the
    work): ``"caffe"`` (RGB->BGR, ImageNet mean subtracted; ResNet50), ``"tf"`` (scaled to [-1, 1];
    ResNet50V2, MobileNetV2), ``"torch"``, or ``"none"`` (identity; EfficientNet rescales inside).
    Living inside the model, it keeps training, evaluation and serving on the same scaling.
    """

    def __init__(self, mode: str = "caffe", **kwargs):
        super().__init__(**kwargs)
        if mode not in PREPROCESS_MODES:
            raise ValueError(f"Preprocess mode {mode!r} is not one of {PREPROCESS_MODES}")
        self.mode = mode

    def call(self, images):
        images = keras.ops.cast(images, self.compute_dtype)
        if self.mode == "none":
            return images
        return keras.applications.imagenet_utils.preprocess_input(
            images, data_format="channels_last", mode=self.mode)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}
