"""Decode one product photo into the model's input: RGB float32 pixels in 0..255 at a fixed size.

Both loaders (``FashionSequence`` and the tf.data pipeline) call ``load_image``, so decoding and
resizing cannot differ between them. OpenCV decodes (BGR, turned to RGB); grayscale, alpha
(composited on white), palette and 16-bit images are handled. A JPEG at least 2x/4x/8x larger
than what it is resized to is decoded at that reduced scale by libjpeg (``IMREAD_REDUCED_COLOR_*``),
which is several times faster on studio-size photos and close to a full decode plus area resize.
The resize geometry (``resized_shape``, ``letterbox_offsets``, ``shrinks``, ``reduction_fits``) is written once
for Python numbers or tensors: ``fashion_hier.preprocessing`` runs the same functions inside the SavedModel graph.

Before any pixel is decoded, the header (read by Pillow, which parses headers lazily) must declare
at most ``max_pixels`` pixels; a larger image is refused with ``ImageTooLargeError``, an
``ImageReadError``, so the loaders skip and report it like any unreadable image. Without it a
1 MB PNG declaring 12000x12000 16-bit RGBA pixels took over a minute and 8 GB to decode.
"""
from __future__ import annotations

import io
import os
import threading
import warnings
from typing import Callable, NamedTuple, Sequence

import cv2
import numpy as np
from PIL import Image

RESIZE_POLICIES = ("stretch", "pad")
PAD_VALUE = 255.0  # "pad" fills the border white, like a studio background
_JPEG_MAGIC = b"\xff\xd8\xff"
_REDUCED_FLAGS = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))
JPEG_REDUCTIONS = tuple(factor for factor, _ in _REDUCED_FLAGS)  # libjpeg's reduced scales, tried largest first
_EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
# Pixel budget per image (the default of ``max_pixels`` and of the config's ``data.max_pixels``). 120 MP admits
# every single-shot studio camera up to the 100 MP medium-format bodies (Fujifilm GFX100 11648x8736 = 101.8 MP,
# Hasselblad X2D 11656x8742 = 101.9 MP) with headroom, and refuses 150 MP backs, stitched panoramas and
# decompression bombs. It is below Pillow's own refusal threshold (2 x PIL.Image.MAX_IMAGE_PIXELS, 179 MP), so
# the exact size of every image within the default budget is known from its header.
DEFAULT_MAX_PIXELS = 120_000_000
# warnings.catch_warnings swaps the process-wide filter list: loader threads take turns around header parsing
_HEADER_LOCK = threading.Lock()


class ImageReadError(OSError):
    """An image file that is missing, empty, not an image, or of an unsupported pixel format."""

    def __init__(self, path: str | os.PathLike, reason: str):
        # the path is kept in ``path``, not OSError's ``filename``, whose str() would hide the message
        self.path = str(os.fspath(path))
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")


class ImageTooLargeError(ImageReadError):
    """An image whose header declares more pixels than the budget: refused before any pixel is decoded."""


def check_size(size: int | Sequence[int], name: str = "size") -> tuple[int, int]:
    """``(height, width)`` from an int or a pair of positive ints; ValueError naming ``name`` otherwise."""
    pair = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0
                                 for v in pair):
        raise ValueError(f"{name} must be (height, width) with two positive integers, got {size!r}")
    return int(pair[0]), int(pair[1])


def check_resize(resize: str) -> str:
    """The resize policy, or ValueError listing the known ones."""
    if resize not in RESIZE_POLICIES:
        raise ValueError(f"resize must be one of {RESIZE_POLICIES}, got {resize!r}")
    return resize


def check_max_pixels(max_pixels: int) -> int:
    """The pixel budget, or ValueError when it is not a positive integer."""
    if not isinstance(max_pixels, (int, np.integer)) or isinstance(max_pixels, bool) or max_pixels <= 0:
        raise ValueError(f"max_pixels must be a positive integer (pixels per image, default {DEFAULT_MAX_PIXELS}), "
                         f"got {max_pixels!r}")
    return int(max_pixels)


def load_image(path: str | os.PathLike, size: int | Sequence[int], *, resize: str = "stretch",
               max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Pixels of ``path`` as float32 RGB in 0..255, shape ``(height, width, 3)``.

    ``resize="stretch"`` scales each side to the target (aspect ratio not kept);
    ``resize="pad"`` keeps the aspect ratio, fits the image inside the target and centres it on
    a white border. Area interpolation when shrinking, bilinear otherwise.
    Raises ImageReadError naming the file when it cannot be decoded, and its subclass
    ImageTooLargeError, before decoding, when its header declares more than ``max_pixels`` pixels.
    """
    height, width = check_size(size)
    check_resize(resize)
    pixels = _decode(path, (height, width), resize, check_max_pixels(max_pixels))
    fitted = _fit(_to_rgb(pixels, path), (height, width), resize)
    return fitted.astype(np.float32, copy=False)


def load_images(paths: Sequence[str | os.PathLike], size: int | Sequence[int], *,
                resize: str = "stretch", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """``load_image`` over ``paths``, stacked into ``(N, height, width, 3)`` float32."""
    height, width = check_size(size)
    batch = np.empty((len(paths), height, width, 3), np.float32)
    for row, path in enumerate(paths):
        batch[row] = load_image(path, (height, width), resize=resize, max_pixels=max_pixels)
    return batch


class ReadBatch(NamedTuple):
    """What ``read_images`` could decode: ``images[i]`` is ``paths[kept[i]]``; the rest failed."""

    images: np.ndarray                      # (len(kept), height, width, 3) float32
    kept: np.ndarray                        # (len(kept),) int64 positions in the paths given
    failed: list[tuple[str, str]]           # (path, reason) of each image that could not be read


def read_images(paths: Sequence[str | os.PathLike], size: int | Sequence[int], *,
                resize: str = "stretch", max_pixels: int = DEFAULT_MAX_PIXELS) -> ReadBatch:
    """``load_image`` over ``paths``, leaving out (not raising on) the images that cannot be read.

    What both loaders call, so that a bad image shrinks its batch instead of stopping an epoch.
    """
    height, width = check_size(size)
    batch = np.empty((len(paths), height, width, 3), np.float32)
    kept, failed = [], []
    for row, path in enumerate(paths):
        try:
            batch[len(kept)] = load_image(path, (height, width), resize=resize, max_pixels=max_pixels)
        except ImageReadError as error:
            failed.append((error.path, error.reason))
            continue
        kept.append(row)
    return ReadBatch(batch[:len(kept)], np.asarray(kept, dtype=np.int64), failed)


def unreadable_reason(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """Why the loaders could not read ``path`` (the same decoder and budget, at a small size), or None if they can."""
    try:
        load_image(path, (8, 8), max_pixels=max_pixels)
    except ImageReadError as error:
        return error.reason
    return None


# ---- decoding -------------------------------------------------------------------------------

def _decode(path: str | os.PathLike, size: tuple[int, int], resize: str, max_pixels: int) -> np.ndarray:
    """Raw pixels as OpenCV gives them (BGR order); JPEGs possibly at a reduced scale; the budget checked first."""
    if os.path.isdir(path):
        raise ImageReadError(path, "it is a folder, not an image file")
    try:
        data = np.fromfile(path, dtype=np.uint8)  # not cv2.imread: copes with non-ASCII paths everywhere
    except (OSError, ValueError) as error:  # ELOOP for a symlink loop, ENOENT, EACCES, ...
        raise ImageReadError(path, getattr(error, "strerror", None) or str(error)) from error
    if data.size == 0:
        raise ImageReadError(path, "the file is empty")
    header = _read_header(data, path, max_pixels)
    if data[:3].tobytes() == _JPEG_MAGIC:
        flag = _jpeg_flag(header, size, resize)
    else:
        flag = cv2.IMREAD_UNCHANGED  # keeps alpha and 16-bit depth, expands palettes
    try:
        pixels = cv2.imdecode(data, flag)
    except cv2.error as error:  # OpenCV raises (rather than returning None) on some malformed headers
        raise ImageReadError(path, f"not a decodable image ({error.err or 'OpenCV error'})") from error
    if pixels is None or pixels.size == 0:
        raise ImageReadError(path, "not a decodable image (corrupt, truncated or unsupported format)")
    return pixels


class _Header(NamedTuple):
    """What the decoder needs to know before decoding: the stored size and whether EXIF swaps its sides."""

    width: int
    height: int
    transposed: bool


def _read_header(data: np.ndarray, path: str | os.PathLike, max_pixels: int) -> _Header:
    """The header of the encoded ``data``, refused with ImageTooLargeError when over ``max_pixels`` pixels.

    Pillow parses the header only (pixels are decoded lazily, and never here). Its warnings (the
    decompression-bomb warning, odd metadata) are silenced locally and its bomb error becomes our refusal:
    ``PIL.Image.MAX_IMAGE_PIXELS`` is left alone. A header Pillow cannot parse is refused too, so that no
    image reaches OpenCV unchecked.
    """
    with _HEADER_LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="PIL")  # Pillow's own warnings only; other threads' still show
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                # JPEG only (MPO included): OpenCV applies EXIF rotation there, and PNG's getexif would decode
                transposed = data[:3].tobytes() == _JPEG_MAGIC and _exif_transposed(image)
        except Image.DecompressionBombError as error:
            refused_above = 2 * (Image.MAX_IMAGE_PIXELS or 0)  # Pillow's own limit: the exact size stays unknown
            beyond = (f"over the budget of {max_pixels} pixels" if max_pixels < refused_above
                      else "more than Pillow parses (2 x PIL.Image.MAX_IMAGE_PIXELS), whatever the budget")
            raise ImageTooLargeError(path, f"its header declares more than {refused_above} pixels, {beyond}") from error
        except Exception as error:  # noqa: BLE001 -- any parser failure (SyntaxError, struct.error, ...) is a bad file
            raise ImageReadError(path, "not a decodable image (corrupt, truncated or unsupported format: "
                                       f"{error})") from error
    if width * height > max_pixels:
        raise ImageTooLargeError(path, f"{width}x{height} = {width * height} pixels, over the budget of {max_pixels} "
                                       "pixels (max_pixels, config data.max_pixels); downscale it or raise the budget")
    return _Header(width, height, transposed)


def _exif_transposed(image: Image.Image) -> bool:
    """True when the EXIF orientation swaps width and height (OpenCV applies it when decoding a JPEG)."""
    try:
        return image.getexif().get(_EXIF_ORIENTATION) in _TRANSPOSING_ORIENTATIONS
    except Exception:  # noqa: BLE001 -- broken EXIF: OpenCV ignores it too, so nothing is transposed
        return False


def _jpeg_flag(header: _Header, size: tuple[int, int], resize: str) -> int:
    """IMREAD_REDUCED_COLOR_k for the largest k that still leaves at least the resized size, else IMREAD_COLOR."""
    width, height = (header.height, header.width) if header.transposed else (header.width, header.height)
    needed = resized_shape((height, width), size, resize)
    for factor, flag in _REDUCED_FLAGS:
        if reduction_fits((height, width), needed, factor):
            return flag
    return cv2.IMREAD_COLOR


def _to_rgb(pixels: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """RGB with 3 channels: uint8 when the source was plain 8-bit colour/gray, else float32 0..255."""
    if pixels.dtype == np.uint8:
        scale = 1.0
    elif pixels.dtype == np.uint16:
        scale = 255.0 / 65535.0
    else:
        raise ImageReadError(path, f"unsupported pixel type {pixels.dtype} (expected 8- or 16-bit)")
    if pixels.ndim == 2 or pixels.shape[2] == 1:
        rgb = cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
        alpha = None
    elif pixels.shape[2] == 3:
        rgb, alpha = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB), None
    elif pixels.shape[2] == 4:
        rgb, alpha = cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB), pixels[:, :, 3]
    else:
        raise ImageReadError(path, f"unsupported channel count {pixels.shape[2]} (expected 1, 3 or 4)")
    if scale == 1.0 and alpha is None:
        return rgb
    rgb = rgb.astype(np.float32) * np.float32(scale)
    if alpha is not None:  # composite on white: transparent product shots sit on a white page
        opacity = alpha.astype(np.float32)[:, :, None] / np.float32(np.iinfo(pixels.dtype).max)
        rgb = rgb * opacity + np.float32(PAD_VALUE) * (1.0 - opacity)
    return rgb


# ---- resizing geometry: one definition, run on Python numbers here and on tensors in the SavedModel graph ----

class ShapeOps(NamedTuple):
    """The functions the geometry needs: Python's here, TensorFlow's in ``fashion_hier.preprocessing``."""

    minimum: Callable
    maximum: Callable
    round: Callable  # half to even in both (Python's round, tf.round)
    logical_and: Callable


PYTHON_OPS = ShapeOps(min, max, round, lambda a, b: a and b)


def resized_shape(source, size: tuple[int, int], resize: str, ops: ShapeOps = PYTHON_OPS):
    """The (height, width) the image content is scaled to: the target, or for "pad" the fitted box.

    "pad": ``scale = min(height / source_height, width / source_width)``, each side ``round(side * scale)``
    (half to even), at least 1 and at most the target. ``ops`` runs the same float64 arithmetic on tensors
    (sources cast to float64) for the in-graph face, so both faces find the same box.
    """
    if resize == "stretch":
        return size
    scale = ops.minimum(size[0] / source[0], size[1] / source[1])
    # tensors first: a Python int after a tensor takes its dtype
    return tuple(ops.minimum(ops.maximum(ops.round(side * scale), 1), limit) for side, limit in zip(source, size))


def letterbox_offsets(size: tuple[int, int], content: tuple[int, int]):
    """(top, left) of the content on the "pad" canvas: centred, the odd pixel of a border below/right."""
    return (size[0] - content[0]) // 2, (size[1] - content[1]) // 2


def shrinks(source, content, ops: ShapeOps = PYTHON_OPS):
    """Whether the content is no larger than the source on both sides: area averaging then, bilinear otherwise."""
    return ops.logical_and(content[0] <= source[0], content[1] <= source[1])


def reduction_fits(source, needed, factor: int, ops: ShapeOps = PYTHON_OPS):
    """Whether a JPEG decoded at 1/``factor`` (libjpeg's reduced scale) still has at least the ``needed`` shape."""
    return ops.logical_and(source[0] >= factor * needed[0], source[1] >= factor * needed[1])


def _scale(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """cv2.resize to ``shape`` (height, width): area averaging when shrinking both sides, bilinear otherwise."""
    if pixels.shape[:2] == shape:
        return pixels
    interpolation = cv2.INTER_AREA if shrinks(pixels.shape[:2], shape) else cv2.INTER_LINEAR
    return cv2.resize(pixels, (shape[1], shape[0]), interpolation=interpolation)


def _fit(pixels: np.ndarray, size: tuple[int, int], resize: str) -> np.ndarray:
    """Apply the resize policy: stretch to ``size``, or scale inside it and centre on a white canvas."""
    content_shape = resized_shape(pixels.shape[:2], size, resize)
    content = _scale(pixels, content_shape)
    if content_shape == size:
        return content
    canvas = np.full((*size, 3), PAD_VALUE, dtype=np.float32)
    top, left = letterbox_offsets(size, content_shape)
    canvas[top:top + content_shape[0], left:left + content_shape[1]] = content
    return canvas
