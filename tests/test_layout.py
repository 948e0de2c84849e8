"""spread_into_subfolders: numbered sub-folders of at most per_folder images, resumable, read_catalog still finds them."""
from __future__ import annotations

import pytest

from fashion_hier.data.layout import spread_into_subfolders


@pytest.fixture
def flat_folder(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(25):
        (folder / f"{10000 + index}.jpg").write_bytes(bytes([index]) * (index + 1))
    (folder / "notes.txt").write_text("not an image")
    (folder / "10100.JPG").write_bytes(b"upper-case extension")
    return folder


def test_images_are_spread_in_sorted_order_into_full_folders(flat_folder, tmp_path):
    out = tmp_path / "spread"
    counts = spread_into_subfolders(flat_folder, out, per_folder=10)
    assert counts == {"images": 26, "folders": 3, "copied": 26, "skipped": 0}
    names = sorted(path.name for path in flat_folder.iterdir() if path.name != "notes.txt")
    for folder_index, start in enumerate(range(0, 26, 10)):
        expected = names[start:start + 10]
        assert sorted(path.name for path in (out / f"{folder_index:04d}").iterdir()) == expected
        for name in expected:
            assert (out / f"{folder_index:04d}" / name).read_bytes() == (flat_folder / name).read_bytes()
    assert not list(out.rglob("notes.txt"))
    assert (flat_folder / "10000.jpg").exists()  # copied, not moved


def test_running_again_skips_images_already_in_place(flat_folder, tmp_path):
    out = tmp_path / "spread"
    spread_into_subfolders(flat_folder, out, per_folder=10)
    (out / "0002" / "10024.jpg").unlink()                 # an interrupted copy: one file missing,
    (out / "0001" / "10015.jpg").write_bytes(b"partial")  # one cut short
    counts = spread_into_subfolders(flat_folder, out, per_folder=10)
    assert counts == {"images": 26, "folders": 3, "copied": 2, "skipped": 24}
    assert (out / "0001" / "10015.jpg").read_bytes() == (flat_folder / "10015.jpg").read_bytes()


def test_move_empties_the_flat_folder(flat_folder, tmp_path):
    counts = spread_into_subfolders(flat_folder, tmp_path / "spread", per_folder=100, move=True)
    assert counts["moved"] == 26 and counts["folders"] == 1
    assert [path.name for path in flat_folder.iterdir()] == ["notes.txt"]


def test_read_catalog_finds_spread_images(tmp_path):
    from fashion_hier.data import make_synthetic_catalog, read_catalog

    labels_csv = make_synthetic_catalog(tmp_path / "catalogue", n=30, image_size=32, seed=0)
    spread = tmp_path / "spread"
    spread_into_subfolders(labels_csv.parent / "images", spread, per_folder=7)
    flat = read_catalog(labels_csv, labels_csv.parent / "images")
    nested = read_catalog(labels_csv, spread)
    assert len(nested) == len(flat) == 30
    assert {path.split("/")[-2] for path in nested.paths} == {"0000", "0001", "0002", "0003", "0004"}
    assert [p.rsplit("/", 1)[1] for p in nested.paths] == [p.rsplit("/", 1)[1] for p in flat.paths]


@pytest.mark.parametrize("per_folder", [0, -3, 2.5, True])
def test_per_folder_must_be_a_positive_integer(flat_folder, tmp_path, per_folder):
    with pytest.raises(ValueError, match="per_folder must be a positive integer"):
        spread_into_subfolders(flat_folder, tmp_path / "spread", per_folder=per_folder)


def test_missing_folder_and_same_folder_are_refused(flat_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="does-not-exist"):
        spread_into_subfolders(tmp_path / "does-not-exist", tmp_path / "spread")
    with pytest.raises(ValueError, match="is image_dir itself"):
        spread_into_subfolders(flat_folder, flat_folder)
