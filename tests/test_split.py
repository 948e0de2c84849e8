"""Stratified train/validation/test split: sizes, stratification, tiny classes, seeds."""

import pandas as pd
import pytest

from fashion_hier.data import Catalog, CatalogReport, Splits
from fashion_hier.data.split import split_frame
from fashion_hier.labels import LabelColumns


def frame_with(sizes: dict[str, int]) -> pd.DataFrame:
    labels = [name for name, size in sizes.items() for _ in range(size)]
    return pd.DataFrame({"id": [str(i) for i in range(len(labels))], "subCategory": "Group", "articleType": labels})


SIZES = {"Tshirts": 100, "Shirts": 60, "Heels": 40, "Watches": 20}


@pytest.mark.parametrize("fractions, sizes", [((0.7, 0.15, 0.15), (154, 33, 33)), ((0.5, 0.3, 0.2), (110, 66, 44))])
def test_sizes_follow_the_fractions(fractions, sizes):
    splits = split_frame(frame_with(SIZES), "articleType", fractions, seed=0)  # 220 rows
    assert (len(splits.train), len(splits.validation), len(splits.test)) == sizes
    assert splits.report["sizes"] == dict(zip(("train", "validation", "test"), sizes))


def test_sizes_round_to_within_one_row():
    splits = split_frame(frame_with({**SIZES, "Heels": 41}), "articleType", (0.7, 0.15, 0.15), seed=0)  # 221 rows
    for part, fraction in ((splits.train, 0.7), (splits.validation, 0.15), (splits.test, 0.15)):
        assert abs(len(part) - fraction * 221) <= 1
    assert len(splits.train) + len(splits.validation) + len(splits.test) == 221


def test_splits_are_disjoint_and_cover_every_row():
    frame = frame_with(SIZES)
    splits = split_frame(frame, "articleType", seed=0)
    ids = [set(part["id"]) for part in (splits.train, splits.validation, splits.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert set.union(*ids) == set(frame["id"])


def test_each_class_keeps_its_share_in_every_split():
    splits = split_frame(frame_with(SIZES), "articleType", (0.6, 0.2, 0.2), seed=5)
    for part, fraction in ((splits.train, 0.6), (splits.validation, 0.2), (splits.test, 0.2)):
        counts = part["articleType"].value_counts()
        for name, size in SIZES.items():
            assert abs(counts.get(name, 0) - fraction * size) <= 1.5, (name, fraction)


def test_same_seed_same_split_other_seed_other_split():
    frame = frame_with(SIZES)
    first, again, other = (split_frame(frame, "articleType", seed=s) for s in (1, 1, 2))
    assert first.test["id"].tolist() == again.test["id"].tolist()
    assert first.validation["id"].tolist() == again.validation["id"].tolist()
    assert set(first.test["id"]) != set(other.test["id"])


def test_single_member_class_goes_to_train_and_is_reported():
    splits = split_frame(frame_with({**SIZES, "Sarees": 1}), "articleType", seed=0)
    assert splits.train["articleType"].tolist().count("Sarees") == 1
    assert splits.report["steps"]["test"]["single_member_classes"] == ["Sarees"]
    assert splits.report["steps"]["test"]["stratified"] is True
    assert "stays on the train side" in splits.report["rules"]["single_member_classes"]


def test_two_member_class_never_leaves_train_empty():
    for seed in range(10):
        splits = split_frame(frame_with({**SIZES, "Shrug": 2}), "articleType", seed=seed)
        assert "Shrug" in set(splits.train["articleType"])
        assert sum(part["articleType"].tolist().count("Shrug") for part in (splits.train, splits.validation, splits.test)) == 2


def test_more_classes_than_split_rows_falls_back_to_random_split():
    frame = frame_with({f"class{i:02d}": 3 for i in range(20)})  # 60 rows, test of 9 < 20 classes
    splits = split_frame(frame, "articleType", seed=0)
    assert splits.report["steps"]["test"]["stratified"] is False
    assert "unstratified" in splits.report["steps"]["test"]["reason"]
    assert len(splits.test) == 9 and len(splits.train) + len(splits.validation) == 51


def test_zero_validation_fraction_gives_an_empty_validation_split():
    splits = split_frame(frame_with(SIZES), "articleType", (0.8, 0.0, 0.2), seed=0)
    assert len(splits.validation) == 0 and len(splits.test) == 44 and len(splits.train) == 176


@pytest.mark.parametrize("fractions", [(0.7, 0.2), (0.7, 0.2, 0.2), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1)])
def test_bad_fractions_are_refused(fractions):
    with pytest.raises(ValueError, match=r"fractions must be \(train, validation, test\)"):
        split_frame(frame_with(SIZES), "articleType", fractions)


def test_catalog_split_stratifies_by_subcategory_column():
    frame = frame_with(SIZES)
    catalog = Catalog(frame, LabelColumns(), CatalogReport("styles.csv", "images"))
    splits = catalog.split(seed=3)
    assert isinstance(splits, Splits)
    assert splits.report["by"] == "articleType"
    assert splits.test["id"].tolist() == split_frame(frame, "articleType", seed=3).test["id"].tolist()
    assert catalog.split(by="category").report["by"] == "subCategory"


def test_unknown_stratify_column_is_named():
    with pytest.raises(KeyError, match="cannot stratify on 'colour'"):
        split_frame(frame_with(SIZES), "colour")
