"""Bad input never crashes, hangs or loses data silently: unreadable images, broken CSVs, bad configs.

Each case of issue 12's table (data and config rows) is built in ``tmp_path`` and must give either
a skipped-and-recorded image or one message naming the file, line or column and what to do.
"""
import csv
import os
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from fashion_hier.config import ConfigError, TrainConfig  # noqa: E402
from fashion_hier.data import (  # noqa: E402
    CatalogError,
    FashionSequence,
    UnreadableImages,
    make_synthetic_catalog,
    read_catalog,
    write_unreadable_report,
)
from fashion_hier.labels import LabelSpace  # noqa: E402

SIZE = 16
BAD_KINDS = ("empty", "truncated", "text", "symlink_loop")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A 40-row synthetic catalogue: (labels CSV, image folder, header line, data lines)."""
    labels_csv = make_synthetic_catalog(tmp_path_factory.mktemp("bad_input"), n=40, image_size=32, seed=3)
    lines = labels_csv.read_text(encoding="utf-8").splitlines()
    return labels_csv, labels_csv.parent / "images", lines[0], lines[1:]


@pytest.fixture
def broken_catalogue(tmp_path):
    """A catalogue whose first four images are a 0-byte file, a truncated JPEG, text, and a symlink loop."""
    labels_csv = make_synthetic_catalog(tmp_path, n=40, image_size=32, seed=4)
    frame = pd.read_csv(labels_csv, dtype=str)
    images = labels_csv.parent / "images"
    paths = [str(images / f"{product_id}.jpg") for product_id in frame["id"]]
    good = open(paths[10], "rb").read()
    open(paths[0], "wb").close()
    open(paths[1], "wb").write(good[: len(good) // 2])
    open(paths[2], "w").write("product photo coming soon")
    os.remove(paths[3])
    os.symlink(paths[3], paths[3])
    labels = LabelSpace.from_frame(frame).encode(frame)
    weights = {"category": np.arange(len(paths), dtype=np.float32)}
    return labels_csv, images, paths, labels, weights


def _write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# ---- unreadable images ------------------------------------------------------------------------

def test_sequence_skips_each_kind_of_unreadable_image_with_its_labels_and_weights(broken_catalogue):
    _, _, paths, labels, weights = broken_catalogue
    sequence = FashionSequence(paths, labels, sample_weights=weights, batch_size=8, image_size=SIZE)
    images, batch_labels, batch_weights = sequence[0]
    assert images.shape == (4, SIZE, SIZE, 3)
    np.testing.assert_array_equal(batch_weights["category"], [4, 5, 6, 7])  # weight = row: rows 0-3 dropped
    np.testing.assert_array_equal(batch_labels["subcategory"], labels["subcategory"][4:8])
    np.testing.assert_array_equal(batch_labels["attributes"], labels["attributes"][4:8])
    assert sequence.unreadable.paths == paths[:4]
    reasons = dict(sequence.unreadable)
    assert "empty" in reasons[paths[0]] and "symbolic links" in reasons[paths[3]]
    assert sum(len(sequence[i][0]) for i in range(len(sequence))) == len(paths) - 4


def test_predict_style_callers_learn_which_paths_a_batch_skipped(broken_catalogue):
    _, _, paths, _, _ = broken_catalogue
    batch = FashionSequence(paths[:6], None, batch_size=6, image_size=SIZE).load_batch(0)
    assert batch.paths == paths[4:6] and len(batch.images) == 2
    assert [path for path, _ in batch.unreadable] == paths[:4]


def _run_with_deadline(function, seconds):
    """Run ``function`` in a daemon thread; fail (instead of hanging the test run) if it takes too long."""
    result = {}

    def target():
        try:
            result["value"] = function()
        except BaseException as error:  # noqa: BLE001 -- re-raised in the test thread
            result["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"did not finish within {seconds} s (hung)"
    if "error" in result:
        raise result["error"]
    return result["value"]


def test_tfdata_skips_unreadable_images_and_finishes(broken_catalogue):
    from fashion_hier.data import make_dataset

    _, _, paths, labels, weights = broken_catalogue

    def read_shuffled():
        dataset = make_dataset(paths, labels, sample_weights=weights, batch_size=8, image_size=SIZE, shuffle=True,
                               seed=1, num_parallel_calls=2)
        return np.concatenate([w["category"].numpy() for _, _, w in dataset])

    record = UnreadableImages()

    def read_with_record():
        dataset = make_dataset(paths, labels, sample_weights=weights, batch_size=8, image_size=SIZE,
                               unreadable=record)
        return [(images.numpy(), w["category"].numpy()) for images, _, w in dataset]

    batches = _run_with_deadline(read_with_record, 120)
    kept_rows = np.concatenate([rows for _, rows in batches])
    np.testing.assert_array_equal(kept_rows, np.arange(4, len(paths)))  # every readable row once, in order
    assert sum(len(images) for images, _ in batches) == len(paths) - 4
    assert sorted(record.paths) == sorted(paths[:4])
    np.testing.assert_array_equal(np.sort(_run_with_deadline(read_shuffled, 120)), np.arange(4, len(paths)))


def test_an_all_unreadable_labelled_batch_takes_the_next_readable_sample(broken_catalogue):
    _, _, paths, labels, _ = broken_catalogue
    sequence = FashionSequence(paths, labels, batch_size=4, image_size=SIZE)
    images, batch_labels = sequence[0]  # rows 0-3 all unreadable
    assert len(images) == 1
    np.testing.assert_array_equal(batch_labels["subcategory"], labels["subcategory"][4:5])


def test_no_readable_image_at_all_is_one_clear_error(tmp_path):
    from fashion_hier.data import ImageReadError

    empty = [_write(tmp_path / f"{i}.jpg", b"") for i in range(3)]
    sequence = FashionSequence(empty, {"category": np.zeros(3, np.int32)}, batch_size=2, image_size=SIZE)
    with pytest.raises(ImageReadError, match="none of the 3 images"):
        sequence[0]


def test_unreadable_report_is_written_as_csv(broken_catalogue, tmp_path):
    _, _, paths, labels, _ = broken_catalogue
    sequence = FashionSequence(paths[:8], {k: v[:8] for k, v in labels.items()}, batch_size=8, image_size=SIZE)
    sequence[0]
    report = write_unreadable_report(sequence.unreadable, tmp_path / "run" / "unreadable_images.csv")
    with open(report, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["image_path", "reason"]
    assert [row[0] for row in rows[1:]] == paths[:4]
    assert not [name for name in os.listdir(report.parent) if name.endswith(".partial")]


def test_verify_images_uses_the_loaders_decoder_and_reports_each_exclusion(broken_catalogue):
    labels_csv, images, paths, _, _ = broken_catalogue
    catalog = read_catalog(labels_csv, images, verify_images=True)
    excluded = catalog.report.excluded["unreadable_image"]
    assert excluded.count == 4  # the truncated JPEG too, which cv2.imread would half-decode
    assert {example["line"] for example in excluded.examples} == {2, 3, 4, 5}
    assert not set(paths[:4]) & set(catalog.paths)
    assert "truncated" in str(catalog.report) or "not a decodable image" in str(catalog.report)


# ---- labels CSV -------------------------------------------------------------------------------

def test_unbalanced_quote_is_named_by_line_and_following_rows_are_recovered(synthetic, tmp_path):
    labels_csv, images, header, lines = synthetic
    lines = list(lines)
    fields = lines[9].split(",")
    fields[-2] = '"' + fields[-2]  # line 11: a quote opens the product name and never closes
    lines[9] = ",".join(fields)
    path = _write(tmp_path / "quote.csv", "\n".join([header, *lines]) + "\n")
    catalog = read_catalog(path, images)
    assert len(catalog) == 40 and catalog.report.rows_read == 40
    (bad,) = catalog.report.bad_rows
    assert bad.line == 11 and bad.swallowed_lines == (11, 41)
    assert "line 11: unbalanced quote" in str(catalog.report)
    assert "lines: 41 (1 header + 40 rows)" in str(catalog.report)
    with pytest.raises(CatalogError, match=r"quote\.csv line 11: an unbalanced quote"):
        read_catalog(path, images, on_bad_rows="raise")
    assert len(read_catalog(path, images, on_bad_rows="skip")) == 39


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_semicolon_and_tab_delimited_files_are_read(synthetic, tmp_path, delimiter):
    labels_csv, images, header, lines = synthetic
    text = "\n".join(line.replace(",", delimiter) for line in [header, *lines]) + "\n"
    catalog = read_catalog(_write(tmp_path / "delimited.csv", text), images)
    assert len(catalog) == 40 and catalog.report.delimiter == delimiter


def test_utf8_bom_and_cp1252_are_read_and_cp1252_is_noted_with_its_line(synthetic, tmp_path):
    labels_csv, images, header, lines = synthetic
    text = "\n".join([header, *lines]) + "\n"
    assert len(read_catalog(_write(tmp_path / "bom.csv", b"\xef\xbb\xbf" + text.encode()), images)) == 40
    changed = list(lines)
    changed[4] = changed[4] + " caf\u00e9"
    path = _write(tmp_path / "windows.csv", ("\n".join([header, *changed]) + "\n").encode("cp1252"))
    catalog = read_catalog(path, images)
    assert len(catalog) == 40 and catalog.report.encoding == "cp1252"
    assert any("windows.csv is not UTF-8 (line 6" in note for note in catalog.report.notes)
    last_column = header.split(",")[-1]
    assert catalog.frame[last_column].str.endswith(" caf\u00e9").sum() == 1


@pytest.mark.parametrize(("content", "message"), [
    ("", r"empty\.csv is empty: expected a header line"),
    ("HEADER\n", r"empty\.csv has a header \(line 1\) but no data rows"),
])
def test_empty_file_and_header_only_are_one_clear_message(synthetic, tmp_path, content, message):
    _, images, header, _ = synthetic
    path = _write(tmp_path / "empty.csv", content.replace("HEADER", header))
    with pytest.raises(CatalogError, match=message):
        read_catalog(path, images)


def test_missing_column_names_the_file_and_column_but_no_internal_name(synthetic, tmp_path):
    _, images, header, lines = synthetic
    keep = [name for name in header.split(",") if name != "articleType"]
    frame = pd.read_csv(_write(tmp_path / "full.csv", "\n".join([header, *lines]) + "\n"), dtype=str)[keep]
    frame.to_csv(tmp_path / "cut.csv", index=False)
    with pytest.raises(CatalogError, match=r"cut\.csv: columns \['articleType'\] not found") as caught:
        read_catalog(tmp_path / "cut.csv", images)
    assert "_csv" not in str(caught.value) and "data.columns" in str(caught.value)


def test_ids_written_as_floats_match_their_images(synthetic, tmp_path):
    _, images, header, lines = synthetic
    floats = [line.replace(",", ".0,", 1) for line in lines]
    catalog = read_catalog(_write(tmp_path / "floats.csv", "\n".join([header, *floats]) + "\n"), images)
    assert len(catalog) == 40
    assert all(os.path.basename(path) == f"{float(product_id):.0f}.jpg"
               for product_id, path in zip(catalog.frame["id"], catalog.paths))
    assert "10000.0" in " ".join(catalog.report.notes) or ".0'" in " ".join(catalog.report.notes)


def test_no_matching_images_names_the_folder_and_what_was_looked_for(synthetic, tmp_path):
    _, images, header, lines = synthetic
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(CatalogError, match=r"no image found for any of its 40 rows under .*elsewhere.*data\.image_dir"):
        read_catalog(_write(tmp_path / "labels.csv", "\n".join([header, *lines]) + "\n"), tmp_path / "elsewhere")


def test_catalog_error_is_a_value_error_for_the_cli():
    assert issubclass(CatalogError, ValueError)


# ---- config -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("override", "message"), [
    ("optimizer.learning_rate=-0.01", r"optimizer\.learning_rate: expected a number > 0 .*got -0\.01"),
    ("model.units=0", r"model\.units: expected an integer >= 1"),
    ("model.dropout=2.0", r"model\.dropout: expected a rate in \[0, 1\)"),
    ("model.dropout=1", r"model\.dropout: expected a rate in \[0, 1\)"),
    ("training.batch_size=0", r"batch_size"),
    ("training.finetune_crop=0", r"training\.finetune_crop: expected a side fraction in \(0, 1\]"),
    ("data.split=[0.5,0.5,0.5]", r"data\.split: the fractions must add up to 1, got \[0\.5, 0\.5, 0\.5\]"),
    ("data.split=[1.2,-0.1,-0.1]", r"data\.split: expected .* each in \[0, 1\]"),
    ("data.image_size=[0,64]", r"data\.image_size: expected \[height, width\] in pixels"),
    ("model.backbone=resnet5O", r"model\.backbone: unknown name 'resnet5O'; known: resnet50, "),
])
def test_config_values_that_cannot_work_are_refused_on_load(override, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig().with_overrides([override])


def test_config_checks_apply_to_yaml_files_and_name_the_file(tmp_path):
    path = _write(tmp_path / "bad.yaml", "optimizer:\n  learning_rate: -0.01\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: optimizer\.learning_rate: expected a number > 0"):
        TrainConfig.from_yaml(path)


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    path = _write(tmp_path / "broken.yaml", "data:\n  image_size: [64, 64]\nmodel:\n  backbone: small_cnn\n"
                                            "  units: [8\ntraining:\n  epochs: 1\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml line \d+, column \d+: YAML syntax error") as caught:
        TrainConfig.from_yaml(path)
    assert "\n" not in str(caught.value)


def test_known_backbone_names_match_the_model_registry():
    from fashion_hier.config_checks import BACKBONE_NAMES
    from fashion_hier.models import BACKBONES

    assert sorted(BACKBONE_NAMES) == sorted(BACKBONES)


def test_worker_processes_add_to_the_parents_record(broken_catalogue):
    import keras

    _, _, paths, _, _ = broken_catalogue
    sequence = FashionSequence(paths[:16], None, batch_size=4, image_size=SIZE, workers=2, use_multiprocessing=True)
    pixels = keras.Input((SIZE, SIZE, 3))
    model = keras.Model(pixels, keras.layers.GlobalAveragePooling2D()(pixels))
    assert model.predict(sequence, verbose=0).shape == (12, 3)
    assert sorted(sequence.unreadable.paths) == sorted(paths[:4])


def test_config_file_that_is_not_utf8_and_bad_override_yaml_are_one_line(tmp_path):
    path = _write(tmp_path / "latin.yaml", "name: run\nmodel:\n  backbone: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin\.yaml line 3: not UTF-8"):
        TrainConfig.from_yaml(path)
    with pytest.raises(ConfigError, match=r"override 'data\.image_size=\[64,': the value is not valid YAML"):
        TrainConfig().with_overrides(["data.image_size=[64,"])
