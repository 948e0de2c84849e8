"""make_synthetic_catalog: determinism, schema, a real hierarchy, uneven classes, labels that match the pixels."""
import cv2
import numpy as np
import pandas as pd
import pytest

from fashion_hier.data import make_synthetic_catalog

KAGGLE_COLUMNS = ["id", "gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "year",
                  "usage", "productDisplayName"]
# Reference colours written by hand for this test (what each baseColour name should look like).
REFERENCE_RGB = {
    "Black": (0, 0, 0), "Blue": (0, 50, 220), "Red": (220, 0, 0), "Green": (0, 150, 40),
    "Yellow": (240, 210, 0), "Purple": (130, 30, 160),
}
NEUTRALS = [(level, level, level) for level in range(90, 256, 15)]  # background greys and near-white marks


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    labels_csv = make_synthetic_catalog(root, n=600, image_size=64, seed=0)
    frame = pd.read_csv(labels_csv, dtype=str)
    return root, labels_csv, frame


def _image(root, product_id):
    return cv2.imread(str(root / "images" / f"{product_id}.jpg"))[:, :, ::-1].astype(float)


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path):
    def files(seed, name):
        labels_csv = make_synthetic_catalog(tmp_path / name, n=20, image_size=32, seed=seed)
        return {path.name: path.read_bytes() for path in [labels_csv, *sorted(labels_csv.parent.glob("images/*"))]}

    first, again, other = files(5, "a"), files(5, "b"), files(6, "c")
    assert len(first) == 21 and first == again
    assert first.keys() == other.keys()
    assert sum(first[name] != other[name] for name in first) >= 20


def test_csv_has_the_kaggle_schema_and_one_jpeg_per_row(catalog):
    root, labels_csv, frame = catalog
    assert list(frame.columns) == KAGGLE_COLUMNS + ["pattern"]
    assert len(frame) == 600 and frame["id"].is_unique and not frame.isna().any().any()
    for product_id in frame["id"].iloc[::50]:
        image = cv2.imread(str(root / "images" / f"{product_id}.jpg"))
        assert image is not None and image.shape == (64, 64, 3)
    assert len(list((root / "images").glob("*.jpg"))) == 600


def test_hierarchy_is_a_tree_with_at_least_4_categories_and_12_subcategories(catalog):
    _, _, frame = catalog
    parents_per_subcategory = frame.groupby("articleType")["subCategory"].nunique()
    assert (parents_per_subcategory == 1).all()
    assert frame["subCategory"].nunique() >= 4 and frame["articleType"].nunique() >= 12
    assert (frame.groupby("subCategory")["articleType"].nunique() >= 1).all()


def test_class_sizes_are_uneven_zipf_like(catalog):
    _, _, frame = catalog
    sizes = frame["articleType"].value_counts().to_numpy()
    shares = np.arange(1, len(sizes) + 1) ** -0.8
    expected = 600 * shares / shares.sum()
    assert np.all(np.abs(np.sort(sizes)[::-1] - expected) <= 1.5)
    assert sizes.max() / sizes.min() > 5


def test_dominant_object_colour_is_the_base_colour(catalog):
    root, _, frame = catalog
    names = list(REFERENCE_RGB)
    references = np.array([*REFERENCE_RGB.values(), *NEUTRALS], float)
    mismatches = []
    for product_id, base_colour in zip(frame["id"], frame["baseColour"]):
        pixels = _image(root, product_id).reshape(-1, 3)
        nearest = np.argmin(((pixels[:, None, :] - references[None]) ** 2).sum(-1), axis=1)
        votes = np.bincount(nearest[nearest < len(names)], minlength=len(names))
        if names[int(np.argmax(votes))] != base_colour:
            mismatches.append(product_id)
    assert mismatches == []


def test_patterns_show_near_white_marks_and_solid_ones_do_not(catalog):
    root, _, frame = catalog
    # luma, not colour: JPEG keeps brightness at full resolution but bleeds colour into thin marks
    white_share = np.array([(cv2.imread(str(root / "images" / f"{product_id}.jpg"), cv2.IMREAD_GRAYSCALE) > 210).mean()
                            for product_id in frame["id"]])
    solid = frame["pattern"].to_numpy() == "Solid"
    assert set(frame["pattern"]) == {"Solid", "Striped", "Dotted", "Checked"}
    assert white_share[solid].max() < 0.002                      # backgrounds stay darker than the marks
    assert white_share[~solid].min() > 0.005 and np.median(white_share[~solid]) > 0.04


@pytest.mark.parametrize("column", ["season", "usage"])
def test_tags_are_predictable_from_the_subcategory_but_not_constant(catalog, column):
    _, _, frame = catalog
    by_subcategory = frame.groupby("articleType")[column].agg(lambda tags: tags.value_counts().iloc[0]).sum()
    overall = frame[column].value_counts().iloc[0]
    # guessing the tag from the subcategory beats guessing the most common tag by a wide margin
    assert by_subcategory / len(frame) - overall / len(frame) > 0.2
    assert frame.groupby("articleType")[column].nunique().min() >= 2


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n": 5}, "n must be"), ({"image_size": 8}, "image_size"), ({"seed": -1}, "seed"), ({"n": 20.5}, "n must be"),
])
def test_bad_arguments_are_refused_with_the_argument_named(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_synthetic_catalog(tmp_path, **kwargs)
