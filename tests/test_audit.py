"""The label audit: out-of-fold heads (checked against scikit-learn's cross_val_predict), cleanlab
ranking that finds injected label errors, and the files ``fashion-hier audit`` writes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fashion_hier import audit
from fashion_hier.commands import audit as audit_command
from fashion_hier.labels import LabelSpace

SETTINGS = audit.HeadSettings(folds=4, components=8, seed=0)


def clustered_catalog(rows_per_class=40, classes=4, dim=16, seed=0):
    """A catalogue whose features cluster by subcategory; two subcategories per category."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(classes, dim))
    subcategory = np.repeat(np.arange(classes), rows_per_class)
    features = (centres[subcategory] + rng.normal(size=(len(subcategory), dim))).astype(np.float32)
    frame = pd.DataFrame({
        "id": [str(1000 + i) for i in range(len(subcategory))],
        "subCategory": [f"cat{s // 2}" for s in subcategory],
        "articleType": [f"sub{s}" for s in subcategory],
        "season": np.where(subcategory % 2 == 0, "Summer", "Winter"),
        "usage": np.where(subcategory < 2, "Casual", "Sports"),
        "image_path": [f"/nowhere/{1000 + i}.jpg" for i in range(len(subcategory))],
    })
    return frame, features


def test_out_of_fold_probabilities_equal_sklearn_cross_val_predict():
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame, features = clustered_catalog()
    labels = frame["articleType"].str[3:].astype(int).to_numpy()
    ours = audit.out_of_fold_probabilities(features, labels, settings=SETTINGS)
    oracle = cross_val_predict(
        make_pipeline(StandardScaler(), PCA(n_components=8, random_state=0), StandardScaler(),
                      LogisticRegression(C=1.0, max_iter=1000)),
        features, labels, cv=StratifiedKFold(4, shuffle=True, random_state=0), method="predict_proba")
    np.testing.assert_allclose(ours, oracle, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours.sum(axis=1), 1.0, rtol=1e-6)


def test_a_rows_own_label_never_reaches_the_model_that_scores_it():
    frame, features = clustered_catalog()
    labels = frame["articleType"].str[3:].astype(int).to_numpy()
    strata = labels.copy()  # the same folds for both label sets
    changed = labels.copy()
    changed[7] = (labels[7] + 1) % 4
    before = audit.out_of_fold_probabilities(features, labels, strata=strata, settings=SETTINGS)
    after = audit.out_of_fold_probabilities(features, changed, strata=strata, settings=SETTINGS)
    np.testing.assert_allclose(after[7], before[7], rtol=1e-5, atol=1e-7)
    assert not np.allclose(after, before), "the changed label should move the other folds' models"


def test_multilabel_probabilities_are_per_column_and_constant_columns_predict_their_value():
    frame, features = clustered_catalog()
    subcategory = frame["articleType"].str[3:].astype(int).to_numpy()
    multi_hot = np.stack([subcategory % 2 == 0, np.ones(len(subcategory), bool)], axis=1).astype(int)
    probabilities = audit.out_of_fold_probabilities(features, multi_hot, multilabel=True, strata=subcategory,
                                                    settings=SETTINGS)
    assert probabilities.shape == multi_hot.shape
    np.testing.assert_array_equal(probabilities[:, 1], 1.0)
    assert ((probabilities[:, 0] >= 0.5) == multi_hot[:, 0]).mean() > 0.95


def test_audit_features_ranks_flipped_subcategories_first():
    frame, features = clustered_catalog(rows_per_class=50)
    rng = np.random.default_rng(1)
    flipped = rng.choice(len(frame), size=10, replace=False)
    original = frame["articleType"].copy()
    for row in flipped:
        current = int(frame.at[row, "articleType"][3:])
        frame.at[row, "articleType"] = f"sub{(current + 1 + rng.integers(3)) % 4}"
    label_space = LabelSpace.from_frame(frame)
    table = audit.audit_features(frame, features, label_space, settings=SETTINGS).table

    assert list(table.columns) == [*audit.CSV_COLUMNS, "flagged", "row"]
    assert set(table["level"]) == {"category", "subcategory", "attributes"}
    sub = table[table["level"] == "subcategory"]
    assert len(sub) == len(frame) and sorted(sub["rank"]) == list(range(1, len(frame) + 1))
    top = set(sub.nsmallest(len(flipped), "score")["row"])
    assert len(top & set(flipped)) >= 9, "the clusters are separable: nearly every flipped label ranks first"
    assert len(set(flipped) & set(sub.loc[sub["flagged"], "row"])) >= 9
    # the suggestion for a flipped row is its cluster's (the original) subcategory
    suggestions = sub.set_index("row").loc[flipped, "suggested"]
    assert (suggestions.to_numpy() == original[flipped].to_numpy()).mean() >= 0.9


def test_classes_too_rare_for_the_folds_are_left_out_not_flagged(caplog):
    frame, features = clustered_catalog()
    frame.loc[0:1, "articleType"] = "rare"  # 2 rows < 4 folds
    frame.loc[0:1, "subCategory"] = "cat0"
    with caplog.at_level("INFO", logger="fashion_hier.audit"):
        table = audit.audit_features(frame, features, LabelSpace.from_frame(frame), settings=SETTINGS).table
    sub = table[table["level"] == "subcategory"]
    assert len(sub) == len(frame) - 2 and "rare" not in set(sub["given"]) | set(sub["suggested"])
    assert "rare" in caplog.text


def test_audit_catalog_writes_csv_summary_and_gallery(tmp_path):
    import json

    from fashion_hier.data import make_synthetic_catalog
    from fashion_hier.labels import LabelColumns

    labels_csv = make_synthetic_catalog(tmp_path / "catalog", n=60, image_size=32, seed=0)
    source = audit.AuditSource(labels_csv, labels_csv.parent / "images", LabelColumns(), backbone="small_cnn",
                               weights=None, image_size=(32, 32))
    # small_cnn is refused without the override; the files are the same either way, only marked
    result = audit.audit_catalog(source, tmp_path / "out", settings=audit.HeadSettings(folds=3, components=16),
                                 gallery_size=7, progress=False, allow_untrained_backbone=True)
    table = result.table
    written = pd.read_csv(tmp_path / "out" / audit.AUDIT_CSV, dtype=str)
    assert list(written.columns) == list(audit.CSV_COLUMNS)
    assert len(written) == int(table["flagged"].sum())
    page = (tmp_path / "out" / audit.AUDIT_HTML).read_text(encoding="utf-8")
    assert page.count('class="card"') == min(7, len(written))
    assert page.count("data:image/jpeg;base64,") == min(7, len(written))
    assert "http://" not in page and "https://" not in page
    summary = json.loads((tmp_path / "out" / audit.AUDIT_JSON).read_text(encoding="utf-8"))
    assert summary["backbone"] == "small_cnn" and summary["untrained_backbone"] is True
    assert {level: summary["levels"][level]["flagged"] for level in summary["levels"]} == \
        table.groupby("level")["flagged"].sum().to_dict()
    assert page.count('id="audit-quality"') == 1


def test_audit_command_needs_a_run_or_a_catalogue(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("name: run\n")  # a run and a CSV that exist: only the combination is wrong
    (tmp_path / "x.csv").write_text("id\n")
    with pytest.raises(SystemExit):
        audit_command.main(["--run", str(tmp_path), "--labels", str(tmp_path / "x.csv")])
    assert "--labels and --images go together" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        audit_command.main([])
    assert "pass --run RUN, or --labels CSV --images DIR" in capsys.readouterr().err


def test_audit_from_run_without_config_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.yaml does not exist"):
        audit.AuditSource.from_run(tmp_path)
