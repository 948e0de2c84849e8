"""make_synthetic_catalog(schema="meesho"): per-category attribute columns, blank cells, visible values.

Also: the default (kaggle) shape writes the same files as before the meesho shape existed.
"""
import hashlib

import cv2
import numpy as np
import pandas as pd
import pytest

from fashion_hier.data import make_synthetic_catalog, read_catalog
from fashion_hier.data.synthetic_meesho import (SLEEVES, TORSO_HALF_WIDTH, _styled, meesho_attribute_map,
                                                meesho_attribute_values, meesho_empty_shares)
from fashion_hier.data.synthetic_products import ARTICLES
from fashion_hier.labels import AttributeGroup, LabelColumns

ATTRIBUTE_COLUMNS = [f"attr_{k}" for k in range(1, 6)]
COLUMNS = ["id", "category", "subcategory", *ATTRIBUTE_COLUMNS, "tags"]
# Reference colours written by hand for this test (what each colour name should look like).
REFERENCE_RGB = {
    "Black": (0, 0, 0), "Blue": (0, 50, 220), "Red": (220, 0, 0), "Green": (0, 150, 40),
    "Yellow": (240, 210, 0), "Purple": (130, 30, 160),
}
NEUTRALS = [(level, level, level) for level in range(90, 256, 15)]  # background greys and near-white marks
# styles.csv and images of make_synthetic_catalog(n=40, image_size=32, seed=3) as written before the meesho
# shape existed (sha256 of the CSV; of every image's name + bytes in name order). JPEG bytes also depend on
# the encoder OpenCV bundles, so that part is compared under the version that recorded it.
KAGGLE_CSV_SHA256 = "927b7c9726a68830ab846cd8dd6265488ea3924468b0fe3b04e3f422076a2e59"
KAGGLE_IMAGES_SHA256 = "c83b291c760fdf9cafa8e88eca99004858548fe207d0c4e0f9c6a83f71aac7ec"
KAGGLE_RECORDED_WITH_OPENCV = "5.1.0"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp("meesho")
    labels_csv = make_synthetic_catalog(root, n=600, image_size=64, seed=0, schema="meesho")
    frame = pd.read_csv(labels_csv, dtype=str, keep_default_na=False)  # blank cells as ""
    return root, labels_csv, frame


def _blank(frame, column):
    return frame[column] == ""


def _colour_votes(root, product_id):
    """Per reference colour, how many pixels lie nearest to it (neutral pixels not counted)."""
    pixels = cv2.imread(str(root / "images" / f"{product_id}.jpg"))[:, :, ::-1].reshape(-1, 3).astype(float)
    references = np.array([*REFERENCE_RGB.values(), *NEUTRALS], float)
    nearest = np.argmin(((pixels[:, None, :] - references[None]) ** 2).sum(-1), axis=1)
    return np.bincount(nearest[nearest < len(REFERENCE_RGB)], minlength=len(REFERENCE_RGB))


def test_csv_has_the_meesho_columns_and_one_jpeg_per_row(catalog):
    root, labels_csv, frame = catalog
    assert labels_csv.name == "styles.csv"
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 600 and frame["id"].is_unique
    assert not (_blank(frame, "category") | _blank(frame, "subcategory")).any()
    assert sorted(path.stem for path in (root / "images").glob("*.jpg")) == sorted(frame["id"])
    image = cv2.imread(str(root / "images" / f"{frame['id'].iloc[0]}.jpg"))
    assert image.shape == (64, 64, 3)


def test_every_subcategory_sits_under_exactly_one_category_and_is_a_kaggle_silhouette(catalog):
    _, _, frame = catalog
    assert (frame.groupby("subcategory")["category"].nunique() == 1).all()
    assert set(frame["category"]) == set(meesho_attribute_map())
    assert 3 <= frame["category"].nunique() <= 4 and frame["subcategory"].nunique() >= 10
    kaggle_parent = {article.name: article.category for article in ARTICLES}
    assert all(kaggle_parent[sub] == cat for sub, cat in zip(frame["subcategory"], frame["category"]))


def test_attributes_that_do_not_apply_to_a_category_are_always_empty(catalog):
    _, _, frame = catalog
    applies = meesho_attribute_map()
    for category, rows in frame.groupby("category"):
        for column in ATTRIBUTE_COLUMNS:
            if column not in applies[category]:
                assert (rows[column] == "").all(), (category, column)
    assert set(applies["Topwear"]) == set(ATTRIBUTE_COLUMNS)  # the widest category uses every column
    assert len(applies["Shoes"]) == 2


def test_filled_cells_hold_the_declared_values_of_their_category_and_column(catalog):
    _, _, frame = catalog
    values = meesho_attribute_values()
    for category, rows in frame.groupby("category"):
        for column, allowed in values[category].items():
            filled = set(rows.loc[rows[column] != "", column])
            assert filled <= set(allowed), (category, column, filled - set(allowed))
            assert len(filled) >= 2, (category, column)


def test_attr_2_means_different_things_in_different_categories_and_a_value_name_one_thing_per_column():
    meanings = meesho_attribute_map()
    assert len({columns["attr_2"] for columns in meanings.values()}) == len(meanings)
    assert meanings["Topwear"]["attr_2"] == "pattern" and meanings["Bags"]["attr_2"] == "size"
    values = meesho_attribute_values()
    for column in ATTRIBUTE_COLUMNS:
        meaning_of = {}
        for category, columns in values.items():
            for value in columns.get(column, ()):
                meaning_of.setdefault(value, set()).add(meanings[category][column])
        assert all(len(found) == 1 for found in meaning_of.values()), (column, meaning_of)


def test_empty_share_of_each_applicable_attribute_lies_between_20_and_70_percent(catalog):
    _, _, frame = catalog
    expected = meesho_empty_shares(seed=0)
    for category, columns in meesho_attribute_map().items():
        rows = frame[frame["category"] == category]
        for column in columns:
            share = _blank(rows, column).mean()
            assert 0.2 <= share <= 0.7, (category, column, share)
            # binomial: within 4 standard deviations of the declared chance
            chance = expected[category][column]
            assert abs(share - chance) <= 4 * np.sqrt(chance * (1 - chance) / len(rows)), (category, column)
    assert all(0.3 <= chance <= 0.6 for columns in expected.values() for chance in columns.values())
    assert expected != meesho_empty_shares(seed=1)


def test_rare_values_exist_in_several_columns(catalog):
    _, _, frame = catalog
    rare_columns = []
    for column in ATTRIBUTE_COLUMNS:
        shares = frame.loc[frame[column] != "", column].value_counts(normalize=True)
        if shares.min() < 0.08:
            rare_columns.append(column)
    assert len(rare_columns) >= 3, rare_columns
    colour_shares = frame.loc[frame["attr_1"] != "", "attr_1"].value_counts(normalize=True)
    assert 0 < colour_shares.min() < 0.08 and len(colour_shares) == len(REFERENCE_RGB)


def test_dominant_object_colour_is_the_colour_attribute_where_given(catalog):
    root, _, frame = catalog
    names = list(REFERENCE_RGB)
    given = frame[frame["attr_1"] != ""]
    assert len(given) > 300
    mismatches = [product_id for product_id, colour in zip(given["id"], given["attr_1"])
                  if names[int(np.argmax(_colour_votes(root, product_id)))] != colour]
    assert mismatches == []


def test_small_bags_cover_far_fewer_pixels_than_large_ones(catalog):
    root, _, frame = catalog
    bags = frame[(frame["category"] == "Bags") & (frame["attr_3"] == "Solid")]
    area = {size: [_colour_votes(root, i).sum() for i in bags.loc[bags["attr_2"] == size, "id"]]
            for size in ("Small", "Medium")}
    assert min(map(len, area.values())) >= 3
    assert np.median(area["Small"]) < 0.7 * np.median(area["Medium"])  # (0.55 / 0.75) ** 2 = 0.54


def test_white_soles_show_near_white_pixels_and_matching_ones_do_not(catalog):
    root, _, frame = catalog
    shoes = frame[(frame["category"] == "Shoes") & (frame["attr_2"] != "")]
    white_share = np.array([(cv2.imread(str(root / "images" / f"{i}.jpg"), cv2.IMREAD_GRAYSCALE) > 210).mean()
                            for i in shoes["id"]])
    white = shoes["attr_2"].to_numpy() == "White"
    assert white.sum() >= 5 and (~white).sum() >= 5
    assert white_share[~white].max() < 0.002 and white_share[white].min() > 0.005


def test_drawn_sleeves_match_the_sleeve_length():
    tshirt = next(article for article in ARTICLES if article.name == "Tshirts")
    truth = {"colour": "Red", "pattern": "Solid", "length": "Regular", "hem": "Matching"}
    outline = {}
    for sleeve_length in SLEEVES:
        drawn, trim = _styled(tshirt, {**truth, "sleeve_length": sleeve_length})
        points = np.concatenate(drawn.shapes)
        outline[sleeve_length] = (np.abs(points[:, 0]).max(), points[np.abs(points[:, 0]) > 0.6, 1].max(initial=-1))
        assert trim == []
    assert outline["Sleeveless"][0] <= TORSO_HALF_WIDTH + 1e-9
    assert outline["Short Sleeves"][0] > 0.8 and outline["Long Sleeves"][0] > 0.8
    assert outline["Long Sleeves"][1] > outline["Short Sleeves"][1] + 0.5  # long sleeves reach far lower


def test_tags_are_pipe_separated_lists_of_up_to_3_known_tags_some_empty(catalog):
    _, _, frame = catalog
    tags = frame["tags"].str.split("|")
    filled = tags[frame["tags"] != ""]
    assert 0.05 < (frame["tags"] == "").mean() < 0.3
    assert filled.map(len).max() == 3 and filled.map(len).min() == 1
    assert all(len(set(row)) == len(row) for row in filled)
    vocabulary = {tag for row in filled for tag in row}
    assert {"Summer", "Casual"} <= vocabulary and len(vocabulary) <= 8


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path):
    def files(seed, name):
        labels_csv = make_synthetic_catalog(tmp_path / name, n=30, image_size=32, seed=seed, schema="meesho")
        return {path.name: path.read_bytes() for path in [labels_csv, *sorted(labels_csv.parent.glob("images/*"))]}

    first, again, other = files(5, "a"), files(5, "b"), files(6, "c")
    assert len(first) == 31 and first == again
    assert first.keys() == other.keys()
    assert sum(first[name] != other[name] for name in first) >= 25


def test_kaggle_default_writes_the_same_csv_as_before(tmp_path):
    labels_csv = make_synthetic_catalog(tmp_path / "default", n=40, image_size=32, seed=3)
    assert hashlib.sha256(labels_csv.read_bytes()).hexdigest() == KAGGLE_CSV_SHA256
    named = make_synthetic_catalog(tmp_path / "named", n=40, image_size=32, seed=3, schema="kaggle")
    assert named.read_bytes() == labels_csv.read_bytes()


@pytest.mark.skipif(cv2.__version__ != KAGGLE_RECORDED_WITH_OPENCV,
                    reason=f"JPEG bytes recorded with OpenCV {KAGGLE_RECORDED_WITH_OPENCV}")
def test_kaggle_default_writes_the_same_jpeg_bytes_as_before(tmp_path):
    labels_csv = make_synthetic_catalog(tmp_path, n=40, image_size=32, seed=3)
    digest = hashlib.sha256()
    for path in sorted((labels_csv.parent / "images").glob("*.jpg")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    assert digest.hexdigest() == KAGGLE_IMAGES_SHA256


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"schema": "meeshoo"}, r"schema must be one of 'kaggle', 'meesho'.*'meeshoo'"),
    ({"schema": None}, "schema must be one of"),
    ({"schema": "meesho", "n": 11}, "n must be an integer >= 12"),
    ({"schema": "meesho", "image_size": 8}, "image_size"),
    ({"schema": "meesho", "seed": -1}, "seed"),
])
def test_bad_arguments_are_refused_with_the_argument_named(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_synthetic_catalog(tmp_path, **kwargs)


def test_read_catalog_reads_the_meesho_catalogue_with_attribute_groups(catalog):
    root, labels_csv, frame = catalog
    groups = [AttributeGroup(column) for column in ATTRIBUTE_COLUMNS]
    groups.append(AttributeGroup("tags", kind="multi", separator="|"))
    columns = LabelColumns(category="category", subcategory="subcategory", groups=tuple(groups))
    read = read_catalog(labels_csv, root / "images", columns=columns)
    assert len(read) == len(frame) and read.report.rows_kept == 600 and not read.report.conflicts
    space = read.label_space()
    applies = meesho_attribute_map()
    for column in ATTRIBUTE_COLUMNS:  # learned from the filled cells: exactly where the column applies
        assert set(space.group(column).applies_to) == {c for c, columns in applies.items() if column in columns}
    assert set(space.group("tags").applies_to) == set(applies)
