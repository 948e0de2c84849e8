"""The pixel budget: images whose header declares too many pixels are skipped and reported before decoding."""
from __future__ import annotations

import resource
import shutil
import struct
import time
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashion_hier.config import ConfigError, TrainConfig
from fashion_hier.data import FashionSequence, ImageReadError, load_image, read_catalog
from fashion_hier.data.images import DEFAULT_MAX_PIXELS, ImageTooLargeError, unreadable_reason

SIZE = 32
BOMB_SIDE = 12000                          # 144 MP: over the default budget and Pillow's warning threshold
HUGE_SIDE = 20000                          # 400 MP: over Pillow's own refusal threshold (2 x MAX_IMAGE_PIXELS)
SECONDS = 2.0                              # decoding the 16-bit bomb took 65-83 s before the check
MAX_RSS_GROWTH_KB = 500 * 1024             # ... and 8 GB of memory
PILLOW_LIMIT = Image.MAX_IMAGE_PIXELS      # must stay untouched


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _header_only_png(path: Path, side: int, *, bit_depth: int) -> Path:
    """A valid PNG whose IHDR declares ``side`` x ``side`` RGBA pixels at ``bit_depth``, holding only 2 zero rows."""
    row = b"\x00" + bytes(side * 4 * bit_depth // 8)  # filter byte, then the row's samples
    ihdr = struct.pack(">IIBBBBB", side, side, bit_depth, 6, 0, 0, 0)  # colour type 6 = RGBA
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(row * 2, 9))
                     + _chunk(b"IEND", b""))
    return path


def _photo(path: Path, height: int, width: int, value: int = 120) -> Path:
    assert cv2.imwrite(str(path), np.full((height, width, 3), value, np.uint8))
    return path


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    return {"16-bit": _header_only_png(folder / "bomb16.png", BOMB_SIDE, bit_depth=16),
            "8-bit": _header_only_png(folder / "bomb8.png", BOMB_SIDE, bit_depth=8)}


def _bomb_warnings(recorded) -> list:
    return [w for w in recorded if issubclass(w.category, Image.DecompressionBombWarning)]


class _Budget:
    """Wall time and peak-memory growth of a block: proof that nothing was decoded."""

    def __enter__(self):
        self.start, self.rss = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        self.rss_growth_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self.rss

    def assert_nothing_decoded(self):
        assert self.seconds < SECONDS, f"took {self.seconds:.1f} s: the image was decoded before the check"
        assert self.rss_growth_kb < MAX_RSS_GROWTH_KB, f"peak memory grew by {self.rss_growth_kb / 1024:.0f} MB"


# ---- the fixtures are real bombs ---------------------------------------------------------------

def test_the_header_only_pngs_are_small_files_pillow_warns_about(bombs):
    for path in bombs.values():
        assert path.stat().st_size < 2000
        with pytest.warns(Image.DecompressionBombWarning), Image.open(path) as image:  # the oracle: Pillow itself
            assert image.size == (BOMB_SIDE, BOMB_SIDE)


# ---- the decode function ----------------------------------------------------------------------

@pytest.mark.parametrize("depth", ["16-bit", "8-bit"])
def test_oversized_png_is_refused_from_its_header_without_a_warning(bombs, depth, recwarn):
    with _Budget() as budget, pytest.raises(ImageTooLargeError) as refused:
        load_image(bombs[depth], SIZE)
    budget.assert_nothing_decoded()
    assert isinstance(refused.value, ImageReadError) and refused.value.path == str(bombs[depth])
    assert f"{BOMB_SIDE}x{BOMB_SIDE} = {BOMB_SIDE ** 2} pixels" in refused.value.reason
    assert f"budget of {DEFAULT_MAX_PIXELS} pixels" in refused.value.reason
    assert not _bomb_warnings(recwarn)
    assert Image.MAX_IMAGE_PIXELS == PILLOW_LIMIT


def test_header_beyond_pillows_own_limit_is_refused_as_too_large(tmp_path, recwarn):
    huge = _header_only_png(tmp_path / "huge.png", HUGE_SIDE, bit_depth=8)
    with _Budget() as budget:
        reason = unreadable_reason(huge)
    budget.assert_nothing_decoded()
    assert reason.startswith(f"its header declares more than {2 * Image.MAX_IMAGE_PIXELS} pixels, over the budget")
    assert not _bomb_warnings(recwarn)


def test_an_image_exactly_at_the_budget_is_read_and_one_pixel_more_is_refused(tmp_path):
    at_budget = _photo(tmp_path / "at.png", 5, 6)
    image = load_image(at_budget, (5, 6), max_pixels=30)
    np.testing.assert_array_equal(image, np.full((5, 6, 3), 120, np.float32))
    over = _photo(tmp_path / "over.jpg", 5, 7)
    with pytest.raises(ImageTooLargeError, match=r"7x5 = 35 pixels, over the budget of 30 pixels"):
        load_image(over, (5, 6), max_pixels=30)
    assert load_image(over, (5, 6)).shape == (5, 6, 3)  # a normal small image passes the default


@pytest.mark.parametrize("max_pixels", [0, -1, "x", 1.5, True])
def test_a_bad_budget_argument_is_refused_naming_it(tmp_path, max_pixels):
    with pytest.raises(ValueError, match=r"max_pixels must be a positive integer"):
        load_image(_photo(tmp_path / "ok.png", 4, 4), SIZE, max_pixels=max_pixels)


def test_concurrent_header_checks_leave_the_warning_filters_as_they_were(bombs):
    before = list(warnings.filters)
    paths = [bombs["8-bit"], bombs["16-bit"]] * 20
    with ThreadPoolExecutor(4) as pool:
        reasons = list(pool.map(unreadable_reason, paths))
    assert all("over the budget" in reason for reason in reasons)
    assert warnings.filters == before


# ---- training loaders and catalogue verification -----------------------------------------------

def _labels(count: int) -> dict[str, np.ndarray]:
    return {"category": np.arange(count) % 2, "subcategory": np.arange(count) % 3}


def test_sequence_skips_and_reports_oversized_images_with_their_labels(bombs, tmp_path, recwarn):
    good = [_photo(tmp_path / f"{value}.png", SIZE, SIZE, value) for value in (10, 200)]
    paths = [good[0], bombs["16-bit"], bombs["8-bit"], good[1]]
    sequence = FashionSequence(paths, _labels(4), batch_size=4, image_size=SIZE)
    with _Budget() as budget:
        images, labels = sequence[0]
    budget.assert_nothing_decoded()
    np.testing.assert_array_equal(images[:, 0, 0, 0], [10, 200])
    np.testing.assert_array_equal(labels["category"], [0, 1])
    assert sequence.unreadable.paths == [str(bombs["16-bit"]), str(bombs["8-bit"])]
    assert all("over the budget" in record.reason for record in sequence.unreadable)
    assert not _bomb_warnings(recwarn)


def test_tfdata_pipeline_skips_and_reports_oversized_images(bombs, tmp_path, recwarn):
    from fashion_hier.data import make_dataset

    good = _photo(tmp_path / "good.png", SIZE, SIZE)
    dataset = make_dataset([good, bombs["16-bit"], bombs["8-bit"]], _labels(3), batch_size=3, image_size=SIZE)
    with _Budget() as budget:
        (images, labels), = list(dataset)
    budget.assert_nothing_decoded()
    assert images.shape[0] == 1 and labels["category"].numpy().tolist() == [0]
    assert sorted(dataset.unreadable.paths) == sorted(str(path) for path in bombs.values())
    assert not _bomb_warnings(recwarn)


def test_loader_budget_is_a_keyword_down_to_the_last_pixel(tmp_path):
    paths = [_photo(tmp_path / "square.png", 6, 6), _photo(tmp_path / "wide.png", 6, 7)]
    sequence = FashionSequence(paths, None, batch_size=2, image_size=6, max_pixels=36)
    assert sequence[0].shape == (1, 6, 6, 3)
    assert sequence.unreadable.paths == [str(paths[1])]


def test_config_budget_reaches_verify_images_and_both_training_loaders(tmp_path):
    from fashion_hier.data import make_synthetic_catalog
    from fashion_hier.data.catalog import read_config_catalog
    from fashion_hier.train import _loader

    labels_csv = make_synthetic_catalog(tmp_path / "data", n=16, image_size=SIZE, seed=0)
    images = tmp_path / "data" / "images"
    oversized = sorted(images.glob("*.jpg"))[3]
    _photo(oversized, SIZE, SIZE + 1)  # 1056 pixels, still named .jpg (PNG bytes: decoders go by content)
    config = TrainConfig().with_overrides([f"data.labels_csv={labels_csv}", f"data.image_dir={images}",
                                           "data.verify_images=true", f"data.max_pixels={SIZE * SIZE}"])
    catalog = read_config_catalog(config)
    assert len(catalog.frame) == len(pd.read_csv(labels_csv)) - 1
    assert str(oversized) not in set(catalog.frame["image_path"])
    assert f"over the budget of {SIZE * SIZE} pixels" in str(catalog.report)
    for loader in ("sequence", "tfdata"):
        chosen = config.with_overrides([f"data.loader={loader}"])
        if loader == "sequence":
            assert _loader(chosen, catalog.frame, None, training=False).inputs.max_pixels == SIZE * SIZE
        else:
            frame = pd.DataFrame({"image_path": [str(oversized), *catalog.frame["image_path"][:2]]})
            dataset = _loader(chosen, frame, None, training=False)
            assert sum(len(batch) for batch in dataset) == 2 and dataset.unreadable.paths == [str(oversized)]


def test_read_catalog_reports_a_bomb_as_an_unreadable_image(bombs, tmp_path):
    from fashion_hier.data import make_synthetic_catalog

    labels_csv = make_synthetic_catalog(tmp_path / "data", n=16, image_size=SIZE, seed=0)
    target = sorted((tmp_path / "data" / "images").glob("*.jpg"))[0]
    shutil.copy(bombs["16-bit"], target)
    with _Budget() as budget:
        catalog = read_catalog(labels_csv, tmp_path / "data" / "images", verify_images=True)
    budget.assert_nothing_decoded()
    assert len(catalog.frame) == len(pd.read_csv(labels_csv)) - 1 and f"{BOMB_SIDE}x{BOMB_SIDE}" in str(catalog.report)


@pytest.mark.parametrize("value", ["0", "-1", "x"])
def test_a_bad_max_pixels_in_the_config_is_refused_on_load_in_one_line(value):
    with pytest.raises(ConfigError, match=r"^data\.max_pixels: expected") as refused:
        TrainConfig().with_overrides([f"data.max_pixels={value}"])
    assert "\n" not in str(refused.value)


def test_the_config_default_is_the_decoders_default():
    assert TrainConfig().data.max_pixels == DEFAULT_MAX_PIXELS


# ---- prediction on a tiny trained run ----------------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    pytest.importorskip("keras")
    from tiny_run import train_tiny_run

    return train_tiny_run(tmp_path_factory.mktemp("budget_run"))


def test_predictor_skips_and_reports_oversized_images(run_dir, bombs, recwarn):
    from fashion_hier.predict import Predictor

    good = pd.read_csv(run_dir / "splits" / "test.csv")["image_path"].tolist()[:2]
    predictor = Predictor.load(run_dir)
    predictor.predict_scores(good)  # warm up the model: the timed call below must not decode or trace
    with _Budget() as budget:
        scores, kept, unreadable = predictor.score_paths([bombs["16-bit"], bombs["8-bit"]])
    budget.assert_nothing_decoded()
    assert not kept.any() and len(scores["category"]) == 0
    assert [image.path for image in unreadable] == [str(bombs["16-bit"]), str(bombs["8-bit"])]
    scores, kept, _ = predictor.score_paths([good[0], bombs["16-bit"], good[1]])
    assert kept.tolist() == [True, False, True] and len(scores["category"]) == 2
    assert not _bomb_warnings(recwarn)


def test_predict_cli_writes_the_reason_and_prints_no_library_warning(run_dir, bombs, tmp_path, capfd, recwarn):
    from fashion_hier.commands.predict import main
    from fashion_hier.predict import ERROR_COLUMN

    folder = tmp_path / "catalogue"
    folder.mkdir()
    good = pd.read_csv(run_dir / "splits" / "test.csv")["image_path"].tolist()[0]
    shutil.copy(good, folder / "good.jpg")
    for depth, path in bombs.items():
        shutil.copy(path, folder / f"{depth}.png")
    out = tmp_path / "predictions.csv"
    assert main(["--run", str(run_dir), "--images", str(folder), "--out", str(out), "--no-progress"]) == 0
    table = pd.read_csv(out).set_index("image_path")
    assert pd.isna(table.loc[str(folder / "good.jpg"), ERROR_COLUMN])
    for depth in bombs:
        assert "over the budget" in table.loc[str(folder / f"{depth}.png"), ERROR_COLUMN]
    captured = capfd.readouterr()
    assert "DecompressionBomb" not in captured.err + captured.out
    assert "2 unreadable images" in captured.out
    assert not _bomb_warnings(recwarn)
