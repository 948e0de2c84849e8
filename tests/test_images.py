"""load_image: odd pixel formats, resize policies, reduced-resolution JPEG decoding, errors."""
import cv2
import numpy as np
import pytest
from PIL import Image

from fashion_hier.data import ImageReadError, load_image, load_images
from fashion_hier.data import images as images_module


def _write_bgr(path, bgr):
    assert cv2.imwrite(str(path), bgr)
    return path


def test_colour_png_comes_back_in_rgb_order(tmp_path):
    bgr = np.zeros((4, 6, 3), np.uint8)
    bgr[:, :3] = (0, 0, 255)   # red in OpenCV's BGR order
    bgr[:, 3:] = (255, 0, 0)   # blue
    image = load_image(_write_bgr(tmp_path / "c.png", bgr), (4, 6))
    assert image.dtype == np.float32 and image.shape == (4, 6, 3)
    np.testing.assert_array_equal(image[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(image[0, 5], [0, 0, 255])


def test_grayscale_png_and_jpeg_are_replicated_to_three_equal_channels(tmp_path):
    gray = np.tile(np.arange(0, 250, 25, dtype=np.uint8), (5, 1))
    image = load_image(_write_bgr(tmp_path / "g.png", gray), (5, 10))
    np.testing.assert_array_equal(image, np.repeat(gray[:, :, None], 3, axis=2).astype(np.float32))
    jpeg = load_image(_write_bgr(tmp_path / "g.jpg", np.full((8, 8), 90, np.uint8)), (8, 8))
    assert np.all(jpeg[..., 0] == jpeg[..., 1]) and np.all(jpeg[..., 1] == jpeg[..., 2])
    assert abs(jpeg.mean() - 90) < 2


def test_rgba_png_is_composited_on_white(tmp_path):
    bgra = np.zeros((2, 3, 4), np.uint8)
    bgra[..., :3] = (0, 0, 200)                 # red 200
    bgra[..., 3] = [[0, 255, 128], [0, 255, 128]]
    image = load_image(_write_bgr(tmp_path / "a.png", bgra), (2, 3))
    np.testing.assert_array_equal(image[0, 0], [255, 255, 255])   # fully transparent -> white
    np.testing.assert_array_equal(image[0, 1], [200, 0, 0])       # opaque -> the colour
    half = 128 / 255                                                # by hand: c * a + 255 * (1 - a)
    np.testing.assert_allclose(image[0, 2], [200 * half + 255 * (1 - half), 255 * (1 - half), 255 * (1 - half)],
                               atol=1e-3)


def test_palette_png_expands_to_its_palette_colours(tmp_path):
    index = np.zeros((3, 4), np.uint8)
    index[:, 2:] = 1
    palette_image = Image.fromarray(index, mode="P")
    palette_image.putpalette([10, 20, 30, 200, 150, 100] + [0] * 762)
    palette_image.save(tmp_path / "p.png")
    image = load_image(tmp_path / "p.png", (3, 4))
    np.testing.assert_array_equal(image[1, 0], [10, 20, 30])
    np.testing.assert_array_equal(image[1, 3], [200, 150, 100])


def test_16bit_png_is_scaled_to_0_255(tmp_path):
    deep = np.array([[0, 257 * 100, 65535]], np.uint16)
    image = load_image(_write_bgr(tmp_path / "d.png", deep), (1, 3))
    np.testing.assert_allclose(image[0, :, 0], [0, 100, 255], atol=1e-3)


def test_stretch_downscale_is_the_block_mean(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    image = load_image(_write_bgr(tmp_path / "s.png", pixels), (4, 6))
    rgb = pixels[:, :, ::-1].astype(float)
    block_mean = rgb.reshape(4, 2, 6, 2, 3).mean(axis=(1, 3))   # area resampling by an integer factor
    assert image.shape == (4, 6, 3)
    assert np.abs(image - block_mean).max() <= 0.5 + 1e-6       # uint8 resize rounds to nearest


def test_pad_keeps_aspect_ratio_and_centres_on_white(tmp_path):
    black = np.zeros((10, 40, 3), np.uint8)                      # 1:4, fitted into 31x31 -> 8x31 (7.75 rounded)
    image = load_image(_write_bgr(tmp_path / "wide.png", black), (31, 31), resize="pad")
    assert image.shape == (31, 31, 3)
    dark_rows = np.flatnonzero(image.max(axis=(1, 2)) < 1)
    np.testing.assert_array_equal(dark_rows, np.arange(11, 19))   # top = (31 - 8) // 2 = 11
    assert np.all(image[:11] == 255) and np.all(image[19:] == 255)
    tall = load_image(_write_bgr(tmp_path / "tall.png", np.zeros((40, 20, 3), np.uint8)), (20, 20), resize="pad")
    np.testing.assert_array_equal(np.flatnonzero(tall.max(axis=(0, 2)) < 1), np.arange(5, 15))


def _spy_decode_flags(monkeypatch):
    flags = []
    decode = cv2.imdecode

    def spy(data, flag):
        flags.append(flag)
        return decode(data, flag)

    monkeypatch.setattr(images_module.cv2, "imdecode", spy)
    return flags


@pytest.mark.parametrize(("size", "resize", "expected"), [
    ((100, 100), "stretch", cv2.IMREAD_REDUCED_COLOR_8),   # 1200/100 = 12 >= 8 on both sides
    ((300, 300), "stretch", cv2.IMREAD_REDUCED_COLOR_4),   # 1200/300 = 4
    ((500, 500), "stretch", cv2.IMREAD_REDUCED_COLOR_2),   # 1200/500 = 2.4
    ((700, 700), "stretch", cv2.IMREAD_COLOR),             # 1200/700 < 2: full decode
    ((700, 700), "pad", cv2.IMREAD_REDUCED_COLOR_2),       # padded content is 525x700: 1200/525 >= 2
])
def test_large_jpeg_is_decoded_at_the_largest_reduction_that_keeps_the_resized_size(
        tmp_path, monkeypatch, size, resize, expected):
    path = _write_bgr(tmp_path / "studio.jpg", np.full((1200, 1600, 3), 128, np.uint8))
    flags = _spy_decode_flags(monkeypatch)
    assert load_image(path, size, resize=resize).shape == (*size, 3)
    assert flags == [expected]


def test_reduced_decode_is_close_to_full_decode_and_area_resize(tmp_path):
    rng = np.random.default_rng(1)
    photo = cv2.GaussianBlur(rng.integers(0, 256, (1200, 1600, 3)).astype(np.uint8), (0, 0), 6)
    path = _write_bgr(tmp_path / "studio.jpg", photo)
    reduced = load_image(path, (120, 160))
    full = cv2.resize(cv2.imread(str(path))[:, :, ::-1], (160, 120), interpolation=cv2.INTER_AREA).astype(np.float32)
    assert np.abs(reduced - full).mean() < 1.0


def test_load_images_stacks_in_path_order(tmp_path):
    paths = [_write_bgr(tmp_path / f"{value}.png", np.full((3, 3), value, np.uint8)) for value in (7, 70, 170)]
    batch = load_images(paths, (2, 2))
    assert batch.shape == (3, 2, 2, 3) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[:, 0, 0, 0], [7, 70, 170])


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\xff\xd8\xff\xe0 truncated"])
def test_unreadable_file_raises_image_read_error_naming_it(tmp_path, content):
    path = tmp_path / "broken.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match="broken.jpg") as error:
        load_image(path, (8, 8))
    assert isinstance(error.value, OSError) and error.value.path == str(path)
    assert str(error.value) == f"cannot read image {path}: {error.value.reason}" and error.value.reason


def test_missing_file_raises_image_read_error_naming_it(tmp_path):
    with pytest.raises(ImageReadError, match="nowhere.png"):
        load_image(tmp_path / "nowhere.png", (8, 8))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"size": (0, 8)}, "size"),
    ({"size": (8, 8, 3)}, "size"),
    ({"size": (8.0, 8)}, "size"),
    ({"size": (8, 8), "resize": "crop"}, "resize"),
])
def test_bad_size_or_policy_is_refused_with_the_argument_named(tmp_path, kwargs, message):
    path = _write_bgr(tmp_path / "ok.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=message):
        load_image(path, **kwargs)
