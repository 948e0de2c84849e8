"""``ImagePreprocessor``: the task's one image preprocessor (decode, resize policy, image size, pixel budget).

As keras-hub's ``ImageClassifier`` holds its ``ImageConverter``, ``HierarchicalClassifier.preprocessor`` holds
this; it has two faces over one resize geometry (``fashion_hier.data.images``' ``resized_shape``,
``letterbox_offsets``, ``shrinks``, ``reduction_fits``, ``PAD_VALUE``):

- ``load(paths)``: files through OpenCV (``data.images.read_images``), what ``streaming`` feeds to
  ``predict_catalog``, ``Predictor``, ``evaluate`` and search;
- ``decode_and_resize(image_bytes)`` / ``resize_images(images)``: TensorFlow ops, what the SavedModel export
  serves (``fashion_hier.export``), with no Python in the graph.

Both give float32 RGB 0..255 at ``image_size``; pixel scaling (ResNet's mean subtraction) is the network's own
``Preprocess`` layer. Measured difference between the faces on 8-bit images (tests/test_preprocessing.py):
0 grey levels for decoding (PNG; JPEG with libjpeg's accurate integer IDCT and the same reduced-scale decode
in both) and for area shrinking by integer factors; at most 1 grey level elsewhere: bilinear enlarging
(OpenCV's 11-bit fixed-point weights, ~12 % of pixels) and non-integer area shrinking (rounding ties, <= ~2 %).
The graph does not apply EXIF rotation, reads 16-bit PNGs at 8 bits, and does not check ``max_pixels``
(a server limits request bytes instead).
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import keras
import numpy as np

from fashion_hier.data.images import (_JPEG_MAGIC, DEFAULT_MAX_PIXELS, JPEG_REDUCTIONS, PAD_VALUE, ReadBatch,
                                       ShapeOps, check_max_pixels, check_resize, check_size, letterbox_offsets,
                                       read_images, reduction_fits, resized_shape, shrinks)

_DCT = "INTEGER_ACCURATE"  # libjpeg's JDCT_ISLOW, what OpenCV uses: decoded pixels are then identical


@keras.saving.register_keras_serializable(package="fashion_hier")
class ImagePreprocessor:
    """Encoded images or files to the model's input: float32 RGB 0..255, ``(height, width, 3)``.

    Args:
        image_size: ``(height, width)`` (or one int for a square) of the model's input.
        resize: ``"stretch"`` (each side scaled to the target) or ``"pad"`` (aspect kept, centred on white).
        max_pixels: files whose header declares more pixels are refused as unreadable (file face only).
    """

    def __init__(self, image_size: int | Sequence[int], resize: str = "stretch", max_pixels: int = DEFAULT_MAX_PIXELS):
        self.image_size = check_size(image_size, "image_size")
        self.resize = check_resize(resize)
        self.max_pixels = check_max_pixels(max_pixels)

    def get_config(self) -> dict[str, Any]:
        return {"image_size": list(self.image_size), "resize": self.resize, "max_pixels": self.max_pixels}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ImagePreprocessor":
        return cls(**config)

    def replace(self, **changes) -> "ImagePreprocessor":
        """The same preprocessor with some of ``image_size``, ``resize``, ``max_pixels`` changed."""
        return ImagePreprocessor(**{**self.get_config(), **changes})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ImagePreprocessor) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((self.image_size, self.resize, self.max_pixels))

    def __repr__(self) -> str:
        return (f"ImagePreprocessor(image_size={self.image_size}, resize={self.resize!r}, "
                f"max_pixels={self.max_pixels})")

    # ---- files: OpenCV -------------------------------------------------------------------------
    def load(self, paths_or_images: Sequence[str | os.PathLike] | np.ndarray) -> ReadBatch:
        """The readable images among ``paths`` at ``image_size`` (``images[i]`` is ``paths[kept[i]]``) and
        ``(path, reason)`` of the others, which are left out, not raised on.

        An ``(N, h, w, 3)`` array (or one ``(h, w, 3)`` image) of pixels is passed through as float32 when it
        has the model's size; any other size is a ValueError (pass paths, which are resized on load).
        """
        if isinstance(paths_or_images, np.ndarray) and paths_or_images.dtype.kind in "fiu":
            images = self._check_images(paths_or_images)
            return ReadBatch(images, np.arange(len(images), dtype=np.int64), [])
        if isinstance(paths_or_images, (str, os.PathLike)):
            paths_or_images = [paths_or_images]
        return read_images(list(paths_or_images), self.image_size, resize=self.resize, max_pixels=self.max_pixels)

    def _check_images(self, images: np.ndarray) -> np.ndarray:
        images = images[None] if images.ndim == 3 else images
        expected = (*self.image_size, 3)
        if images.ndim != 4 or images.shape[1:] != expected:
            raise ValueError(f"images have shape {images.shape}; this model takes (N, {', '.join(map(str, expected))}) "
                             f"RGB 0..255 — pass image paths (resized on load) or resize the array to "
                             f"{self.image_size[0]}x{self.image_size[1]}")
        return images.astype(np.float32, copy=False)

    # ---- in the graph: TensorFlow ----------------------------------------------------------------
    def decode_and_resize(self, image_bytes):
        """Encoded JPEG/PNG/GIF/BMP bytes to pixels in the graph: a string scalar gives ``(height, width, 3)``,
        a batch ``(N,)`` gives ``(N, height, width, 3)`` float32 RGB 0..255, as ``load`` reads the same file."""
        import tensorflow as tf

        image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
        if image_bytes.shape.rank == 0:
            return self._decode_and_resize_one(image_bytes)
        return tf.map_fn(self._decode_and_resize_one, image_bytes,
                         fn_output_signature=tf.TensorSpec((*self.image_size, 3), tf.float32))

    def resize_images(self, images):
        """Decoded RGB pixels, ``(h, w, 3)`` or ``(N, h, w, 3)``, to ``image_size`` with the resize policy, in the
        graph. uint8 input is rounded after resampling, as OpenCV rounds uint8 images; float32 is not."""
        import tensorflow as tf

        images = tf.convert_to_tensor(images)
        eight_bit = tf.constant(images.dtype == tf.uint8)
        return self._fit(tf.cast(images, tf.float32), eight_bit)

    def _decode_and_resize_one(self, data):
        pixels, eight_bit = self._decode(data)
        return self._fit(pixels, eight_bit)

    def _decode(self, data):
        """One encoded image to float32 RGB and whether OpenCV would keep it as uint8 (8-bit, no alpha channel)."""
        import tensorflow as tf

        def jpeg():
            shape = tf.image.extract_jpeg_shape(data)
            source = (shape[0], shape[1])
            needed = self._content_shape(source)
            cases = [(reduction_fits(source, needed, ratio, _tf_ops()),
                      lambda ratio=ratio: tf.io.decode_jpeg(data, channels=3, ratio=ratio, dct_method=_DCT))
                     for ratio in JPEG_REDUCTIONS]
            decoded = tf.case(cases, default=lambda: tf.io.decode_jpeg(data, channels=3, dct_method=_DCT))
            return tf.cast(decoded, tf.float32), tf.constant(True)

        def other():
            pixels = tf.cast(tf.io.decode_image(data, expand_animations=False), tf.float32)  # 1 to 4 channels
            channels = tf.shape(pixels)[2]
            colour = tf.cond(channels < 3, lambda: tf.tile(pixels[:, :, :1], [1, 1, 3]), lambda: pixels[:, :, :3])
            has_alpha = tf.equal(channels % 2, 0)  # gray+alpha or RGBA: composited on white, as images._to_rgb
            opacity = tf.cond(has_alpha, lambda: pixels[:, :, -1:] / 255.0, lambda: tf.ones_like(pixels[:, :, :1]))
            return colour * opacity + PAD_VALUE * (1.0 - opacity), tf.logical_not(has_alpha)

        is_jpeg = tf.equal(tf.strings.substr(data, 0, 3), _JPEG_MAGIC)
        pixels, eight_bit = tf.cond(is_jpeg, jpeg, other)
        pixels.set_shape([None, None, 3])
        return pixels, eight_bit

    def _content_shape(self, source):
        """``resized_shape`` on tensors: the same float64 arithmetic, as int32."""
        import tensorflow as tf

        as_float = tuple(tf.cast(side, tf.float64) for side in source)
        return tuple(tf.cast(side, tf.int32) for side in resized_shape(as_float, self.image_size, self.resize,
                                                                         _tf_ops()))

    def _fit(self, pixels, eight_bit):
        """images._fit in tensors: resample the content (area when shrinking, else bilinear), pad it onto white."""
        import tensorflow as tf

        height, width = self.image_size
        shape = tf.shape(pixels)
        source = (shape[-3], shape[-2])
        content = self._content_shape(source)
        unchanged = tf.logical_and(tf.equal(content[0], source[0]), tf.equal(content[1], source[1]))
        target = tf.stack(content)
        resampled = tf.case([(unchanged, lambda: pixels),
                             (shrinks(source, content, _tf_ops()), lambda: tf.image.resize(pixels, target, "area"))],
                            default=lambda: tf.image.resize(pixels, target, "bilinear"))
        # OpenCV resizes 8-bit images without alpha as uint8, so its results are rounded to integers: half to
        # even, except its exact 2x2 area shrink, which adds 2 before dividing by 4 (half up)
        halving = tf.logical_and(tf.equal(source[0], 2 * content[0]), tf.equal(source[1], 2 * content[1]))
        rounded = tf.where(halving, tf.floor(resampled + 0.5), tf.round(resampled))
        resampled = tf.where(tf.logical_and(eight_bit, tf.logical_not(unchanged)),
                             tf.clip_by_value(rounded, 0.0, 255.0), resampled)
        top, left = letterbox_offsets(self.image_size, content)
        paddings = [[0, 0]] * (pixels.shape.rank - 3) + [[top, height - content[0] - top],
                                                         [left, width - content[1] - left], [0, 0]]
        padded = tf.pad(resampled - PAD_VALUE, paddings) + PAD_VALUE
        return tf.ensure_shape(padded, [*pixels.shape[:-3], height, width, 3])


def _tf_ops() -> ShapeOps:
    import tensorflow as tf

    return ShapeOps(tf.minimum, tf.maximum, tf.round, tf.logical_and)
