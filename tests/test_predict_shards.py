"""Sharded batch prediction: n ``--shard i/n`` runs partition the images and reproduce one unsharded run exactly."""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from fashion_hier.config import TrainConfig  # noqa: E402
from fashion_hier.labels import LabelSpace  # noqa: E402
from fashion_hier.models import build_model  # noqa: E402
from fashion_hier.commands.predict import main  # noqa: E402

SIZE = 32


@pytest.fixture(scope="module")
def run_and_images(tmp_path_factory):
    """An untrained run directory (model, labels.json, config.yaml) and 11 distinct random JPEGs."""
    root = tmp_path_factory.mktemp("shards")
    run_dir = root / "run"
    run_dir.mkdir()
    labels = LabelSpace(categories=["Bags", "Shoes"], subcategories=["Backpacks", "Heels", "Sneakers"],
                        attributes=["Casual", "Summer", "Winter"],
                        parents={"Backpacks": "Bags", "Heels": "Shoes", "Sneakers": "Shoes"})
    keras.utils.set_random_seed(3)
    build_model(2, 3, 3, backbone="mobilenetv2", weights=None, input_shape=(SIZE, SIZE, 3), units=8).save(
        run_dir / "model.keras")
    labels.save(run_dir / "labels.json")
    TrainConfig().with_overrides([f"data.image_size=[{SIZE}, {SIZE}]"]).to_yaml(run_dir / "config.yaml")
    images = root / "images"
    (images / "nested").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index in range(11):
        folder = images / "nested" if index % 4 == 0 else images
        cv2.imwrite(str(folder / f"{index:02d}.jpg"), rng.integers(0, 256, (40, 30, 3), dtype=np.uint8))
    return run_dir, images


def _predict(run_dir, images, out, *extra) -> pd.DataFrame:
    assert main(["--run", str(run_dir), "--images", str(images), "--out", str(out), "--no-progress",
                 "--batch-size", "4", *extra]) == 0
    return pd.read_csv(out, keep_default_na=False)


@pytest.mark.slow
def test_three_shards_concatenated_equal_the_unsharded_run(run_and_images, tmp_path):
    run_dir, images = run_and_images
    whole = _predict(run_dir, images, tmp_path / "whole.csv")
    parts = [_predict(run_dir, images, tmp_path / f"part{i}.csv", "--shard", f"{i}/3") for i in range(3)]

    assert [len(part) for part in parts] == [4, 4, 3]  # 11 images: every third one, starting at i
    shard_paths = [set(part["image_path"]) for part in parts]
    assert not (shard_paths[0] & shard_paths[1] or shard_paths[0] & shard_paths[2] or shard_paths[1] & shard_paths[2])
    merged = pd.concat(parts).sort_values("image_path").reset_index(drop=True)
    expected = whole.sort_values("image_path").reset_index(drop=True)
    assert len(expected) == 11
    pd.testing.assert_frame_equal(merged, expected, check_exact=False, rtol=1e-5)


def test_bad_shard_argument_is_refused_with_the_expected_form(run_and_images, tmp_path, capsys):
    run_dir, images = run_and_images
    with pytest.raises(SystemExit):
        main(["--run", str(run_dir), "--images", str(images), "--out", str(tmp_path / "p.csv"), "--shard", "3/3"])
    assert "0 <= i < n" in capsys.readouterr().err
