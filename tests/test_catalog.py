"""Catalogue reading: bad rows, image lookup, exclusions with reports, balancing, real data."""
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from fashion_hier.data import Catalog, CatalogReport, read_catalog
from fashion_hier.labels import LabelColumns

HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"
ROWS = [
    "1,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,Blue Tee",                 # line 2
    "2,Men,Apparel,Topwear,Tshirts,Red,Fall,2012,NA,Red Tee",                          # line 3: usage NA
    "3,Women,Footwear,Shoes,Heels,Black,Winter,2013,Party,Heels, black, size 5",     # line 4: 2 unquoted commas
    "4,Women,Footwear,Shoes,Heels,Black,Winter,2013,Party,Heels",                      # line 5: no image file
    "5,Women,Footwear,Shoes,,Black,Winter,2013,Party,No article type",                 # line 6: missing label
    "6,Men,Accessories,Bags,Backpacks,Grey,Fall,2014,Travel,Backpack",                 # line 7: corrupt JPEG
    "7,Men,Accessories,Watches,Watches,Silver,Fall,2014,Formal,Watch",                 # line 8: 1-sample class, PNG in subfolder
    '8,Women,Apparel,Topwear,Tops,White,Summer,2012,Casual,"Top, quoted"',             # line 9: properly quoted
]
MALFORMED_LINE, NO_IMAGE_LINE, MISSING_LABEL_LINE, CORRUPT_LINE = 4, 5, 6, 7


def write_image(path: Path, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((8, 8, 3), value, dtype=np.uint8))


@pytest.fixture
def catalogue(tmp_path) -> tuple[Path, Path]:
    images = tmp_path / "images"
    for product_id in (1, 2, 3, 5, 8):
        write_image(images / f"{product_id}.jpg")
    write_image(images / "nested" / "7.png")
    (images / "6.jpg").write_bytes(b"this is not a jpeg")
    (images / "notes.txt").write_text("ignored")
    csv_path = tmp_path / "styles.csv"
    csv_path.write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    return csv_path, images


def test_malformed_row_is_recovered_by_joining_the_last_column(catalogue):
    catalog = read_catalog(*catalogue)
    row = catalog.frame.set_index("id").loc["3"]
    assert row["productDisplayName"] == "Heels, black, size 5"
    assert row["usage"] == "Party"
    assert [(b.line, b.fields, b.expected, b.action) for b in catalog.report.bad_rows] == [(MALFORMED_LINE, 12, 10, "recovered")]
    assert catalog.frame.set_index("id").loc["8", "productDisplayName"] == "Top, quoted"


def test_malformed_row_is_skipped_when_asked(catalogue):
    catalog = read_catalog(*catalogue, on_bad_rows="skip")
    assert "3" not in set(catalog.frame["id"])
    assert [(b.line, b.action) for b in catalog.report.bad_rows] == [(MALFORMED_LINE, "skipped")]
    assert catalog.report.rows_read == 8


def test_malformed_row_raises_naming_file_line_and_remedy(catalogue):
    with pytest.raises(ValueError, match=rf"styles.csv line {MALFORMED_LINE}: 12 fields, expected 10 .*on_bad_rows"):
        read_catalog(*catalogue, on_bad_rows="raise")


def test_faulty_rows_are_left_out_and_reported_by_line(catalogue):
    catalog = read_catalog(*catalogue, verify_images=True)
    assert sorted(catalog.frame["id"], key=int) == ["1", "2", "3", "7", "8"]
    excluded = catalog.report.excluded
    assert (excluded["missing_label"].count, excluded["missing_label"].examples[0]["line"]) == (1, MISSING_LABEL_LINE)
    assert "articleType" in excluded["missing_label"].examples[0]["detail"]
    assert (excluded["missing_image"].count, excluded["missing_image"].examples[0]["id"]) == (1, "4")
    assert excluded["missing_image"].examples[0]["line"] == NO_IMAGE_LINE
    assert (excluded["unreadable_image"].count, excluded["unreadable_image"].examples[0]["line"]) == (1, CORRUPT_LINE)
    assert catalog.report.rows_read == 8 and catalog.report.rows_kept == 5


def test_corrupt_image_is_kept_without_the_verify_pass(catalogue):
    assert "6" in set(read_catalog(*catalogue).frame["id"])


def test_images_found_recursively_with_absolute_paths(catalogue):
    csv_path, images = catalogue
    catalog = read_catalog(csv_path, images)
    paths = dict(zip(catalog.frame["id"], catalog.paths))
    assert paths["7"] == str((images / "nested" / "7.png").resolve())
    assert paths["1"] == str((images / "1.jpg").resolve())
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in catalog.paths)
    assert isinstance(catalog.paths, np.ndarray) and len(catalog.paths) == len(catalog)


def test_missing_values_stay_missing_and_ids_stay_text(catalogue):
    frame = read_catalog(*catalogue).frame.set_index("id")
    assert pd.isna(frame.loc["2", "usage"])
    assert frame.index.tolist() == ["1", "2", "3", "6", "7", "8"]


def test_id_with_two_image_files_prefers_extension_order_and_is_reported(catalogue):
    csv_path, images = catalogue
    write_image(images / "other" / "1.png")
    catalog = read_catalog(csv_path, images)
    assert dict(zip(catalog.frame["id"], catalog.paths))["1"].endswith("1.jpg")
    assert catalog.report.ambiguous_images.count == 1
    catalog = read_catalog(csv_path, images, extensions=(".png", ".jpg"))
    assert dict(zip(catalog.frame["id"], catalog.paths))["1"].endswith(os.path.join("other", "1.png"))


def test_report_prints_and_serialises(catalogue):
    report = read_catalog(*catalogue, verify_images=True).report
    assert isinstance(report, CatalogReport)
    text = str(report)
    assert f"line {MALFORMED_LINE}: 12 fields, expected 10" in text
    assert "left out, missing image: 1" in text and "left out, unreadable image: 1" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["bad_rows"][0]["line"] == MALFORMED_LINE
    assert data["excluded"]["missing_label"]["count"] == 1


def test_custom_columns_and_path_column(tmp_path):
    write_image(tmp_path / "pics" / "a" / "x.jpg")
    write_image(tmp_path / "pics" / "b" / "y.webp")
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("file,group,kind,tags\na/x.jpg,Tops,Tee,red|striped\nb/y.webp,Shoes,Boot,\nc/z.jpg,Shoes,Boot,red\n")
    columns = LabelColumns("group", "kind", ("tags",), "|")
    catalog = read_catalog(csv_path, tmp_path / "pics", columns=columns, path_column="file")
    assert catalog.frame["file"].tolist() == ["a/x.jpg", "b/y.webp"]
    assert catalog.report.excluded["missing_image"].examples[0]["file"] == "c/z.jpg"
    assert catalog.label_space().attributes == ["red", "striped"]


def test_unknown_column_names_are_reported_with_the_header(catalogue):
    with pytest.raises(ValueError, match=r"styles.csv: columns \['colour'\] not found \(header: \['id'"):
        read_catalog(*catalogue, columns=LabelColumns(attributes=("colour",)))


def test_missing_folder_and_bad_options_are_refused(catalogue, tmp_path):
    csv_path, images = catalogue
    with pytest.raises(FileNotFoundError, match="image folder"):
        read_catalog(csv_path, tmp_path / "nowhere")
    with pytest.raises(ValueError, match="on_bad_rows must be one of"):
        read_catalog(csv_path, images, on_bad_rows="ignore")
    with pytest.raises(ValueError, match="target_samples must be a positive integer"):
        read_catalog(csv_path, images, target_samples=0)


@pytest.fixture
def uneven(tmp_path) -> tuple[Path, Path]:
    """Subcategory sizes 40, 10, 6, 4 (mean 15), every row with its own image."""
    sizes = {"Tshirts": 40, "Shirts": 10, "Heels": 6, "Watches": 4}
    lines, product_id = [HEADER], 0
    for article, size in sizes.items():
        for _ in range(size):
            product_id += 1
            write_image(tmp_path / "images" / f"{product_id}.jpg")
            lines.append(f"{product_id},Men,Apparel,Group,{article},Blue,Summer,2012,Casual,Name")
    (tmp_path / "styles.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "styles.csv", tmp_path / "images"


def test_cap_factor_caps_each_class_at_k_times_mean(uneven):
    catalog = read_catalog(*uneven, cap_factor=1.5, seed=0)
    counts = catalog.frame["articleType"].value_counts().to_dict()
    assert counts == {"Tshirts": 22, "Shirts": 10, "Heels": 6, "Watches": 4}  # cap = floor(1.5 * 15)
    assert catalog.report.balancing["cap"]["cap"] == 22
    assert catalog.report.balancing["cap"]["rows_removed"] == 18


def test_target_samples_keeps_class_proportions_and_exact_total(uneven):
    catalog = read_catalog(*uneven, target_samples=30, seed=0)
    counts = catalog.frame["articleType"].value_counts().to_dict()
    assert counts == {"Tshirts": 20, "Shirts": 5, "Heels": 3, "Watches": 2}  # 30 x (40, 10, 6, 4) / 60


def test_balancing_is_reproducible_from_the_seed(uneven):
    ids = [set(read_catalog(*uneven, cap_factor=1.0, target_samples=25, seed=s).frame["id"]) for s in (3, 3, 4)]
    assert ids[0] == ids[1]
    assert ids[0] != ids[2]


REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-product-images"


@pytest.mark.skipif(not (REAL / "styles.csv").is_file(), reason="real Fashion Product Images subset not present")
def test_real_styles_csv_counts_match_plain_pandas():
    oracle = pd.read_csv(REAL / "styles.csv")
    stems = {os.path.splitext(name)[0] for name in os.listdir(REAL / "images")}
    with_image = oracle[oracle["id"].astype(str).isin(stems)]
    labelled = with_image.dropna(subset=["subCategory", "articleType"])
    catalog = read_catalog(REAL / "styles.csv", REAL / "images")
    assert isinstance(catalog, Catalog)
    assert catalog.report.rows_read == len(oracle)
    assert len(catalog) == len(labelled)
    assert catalog.report.bad_rows == []
    assert catalog.frame["articleType"].value_counts().to_dict() == labelled["articleType"].value_counts().to_dict()
    assert int(catalog.frame["usage"].isna().sum()) == int(oracle["usage"].isna().sum())
    space = catalog.label_space()
    assert space.num_subcategories == oracle["articleType"].nunique()
    assert space.num_categories == oracle["subCategory"].nunique()
    pairs = oracle.groupby("articleType")["subCategory"].nunique()
    assert sorted(space.conflicts) == sorted(pairs.index[pairs > 1])
