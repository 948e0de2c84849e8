"""The audit refuses what it cannot judge: a backbone without pretrained weights is refused in one line
(unless overridden, and then marked), and every level reports its out-of-fold accuracy (checked against
scikit-learn) with a "not to be trusted" warning when it is not clearly above the majority baseline."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from fashion_hier import audit, cli
from fashion_hier.config import TrainConfig
from fashion_hier.labels import LabelSpace
from fashion_hier.rundir import RunDir
from test_audit import SETTINGS, clustered_catalog


def write_run_config(run, *, backbone: str, weights: str) -> None:
    """A run directory holding only its config.yaml: all the audit reads before it refuses."""
    config = TrainConfig().with_overrides([
        f"data.labels_csv={run / 'nowhere' / 'styles.csv'}", f"data.image_dir={run / 'nowhere' / 'images'}",
        f"model.backbone={backbone}", f"model.weights={weights}"])
    RunDir(run).config.parent.mkdir(parents=True, exist_ok=True)
    config.to_yaml(RunDir(run).config)


# ---- refusal --------------------------------------------------------------------------------------
@pytest.mark.parametrize("backbone, weights, reason, remedy", [
    ("resnet50", "null", "backbone 'resnet50' with weights=None is randomly initialised", "--weights imagenet"),
    ("small_cnn", "null", "backbone 'small_cnn' has no pretrained weights", "--backbone resnet50 --weights imagenet"),
])
def test_cli_refuses_a_run_without_pretrained_weights_in_one_line(tmp_path, capsys, backbone, weights, reason, remedy):
    write_run_config(tmp_path / "run", backbone=backbone, weights=weights)
    code = cli.main(["audit", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("fashion-hier audit: audit refused: ")
    for said in (reason, "random", "flag correct labels", remedy, "get_resnet50_imagenet.sh",
                 "--allow-untrained-backbone"):
        assert said in err
    assert not (tmp_path / "out").exists(), "refused before reading the catalogue or writing anything"


def test_pretrained_weights_pass_and_small_cnn_is_refused_whatever_its_weights(tmp_path):
    weights_file = tmp_path / "resnet50_notop.h5"
    assert audit.check_pretrained_backbone("resnet50", "imagenet") is None
    assert audit.check_pretrained_backbone("resnet50", str(weights_file)) is None
    with pytest.raises(audit.UntrainedBackboneError, match="has no pretrained weights"):
        audit.check_pretrained_backbone("small_cnn", str(weights_file))
    assert issubclass(audit.UntrainedBackboneError, ValueError)  # the CLI's one-line user error


def test_allow_untrained_backbone_audits_and_marks_the_report(tmp_path, capsys, caplog):
    from fashion_hier.data import make_synthetic_catalog

    labels_csv = make_synthetic_catalog(tmp_path / "catalog", n=60, image_size=32, seed=0)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="fashion_hier.audit"):
        code = cli.main(["audit", "--labels", str(labels_csv), "--images", str(labels_csv.parent / "images"),
                         "--backbone", "small_cnn", "--weights", "none", "--allow-untrained-backbone",
                         "--folds", "3", "--gallery", "5", "--no-progress", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "untrained backbone audited on request: backbone 'small_cnn' has no pretrained weights" in caplog.text
    assert "NOT TO BE TRUSTED" in printed and "the rankings are not to be trusted" in printed
    summary = json.loads((out / audit.AUDIT_JSON).read_text(encoding="utf-8"))
    assert summary["untrained_backbone"] is True and summary["trusted"] is False
    assert summary["warnings"][0].startswith("untrained backbone audited on request")
    page = (out / audit.AUDIT_HTML).read_text(encoding="utf-8")
    assert "Warning: untrained backbone audited on request" in page


# ---- out-of-fold accuracy -------------------------------------------------------------------------
def test_reported_accuracy_equals_sklearn_on_the_out_of_fold_argmax():
    from sklearn.metrics import accuracy_score

    frame, features = clustered_catalog()
    features = features + np.random.default_rng(5).normal(scale=3.0, size=features.shape).astype(np.float32)
    result = audit.audit_features(frame, features, LabelSpace.from_frame(frame), settings=SETTINGS)
    for level in ("category", "subcategory"):
        judged = result.table[result.table["level"] == level]  # given: the label; suggested: the OOF argmax
        quality = result.quality[level]
        assert quality.metric == "accuracy" and quality.rows == len(judged)
        assert quality.score == pytest.approx(accuracy_score(judged["given"], judged["suggested"]))
        assert quality.baseline == pytest.approx(judged["given"].value_counts(normalize=True).max())
    assert 0.3 < result.quality["subcategory"].score < 1.0, "noisy enough that the check is not trivially 1"


def test_out_of_fold_quality_equals_sklearn_accuracy_and_average_precision():
    from sklearn.metrics import accuracy_score, average_precision_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    probabilities = rng.dirichlet(np.ones(4), size=200)
    quality = audit.out_of_fold_quality("subcategory", labels, probabilities)
    assert quality.score == pytest.approx(accuracy_score(labels, probabilities.argmax(axis=1)))
    assert quality.baseline == pytest.approx(np.bincount(labels).max() / len(labels))

    multi_hot = (rng.random((200, 5)) < [0.1, 0.2, 0.3, 0.5, 0.7]).astype(int)
    scores = np.clip(multi_hot * 0.3 + rng.random((200, 5)) * 0.8, 0, 1)
    quality = audit.out_of_fold_quality("attributes", multi_hot, scores, multilabel=True)
    assert quality.metric == "mAP"
    assert quality.score == pytest.approx(average_precision_score(multi_hot, scores, average="macro"))
    assert quality.baseline == pytest.approx(multi_hot.mean())


def test_trust_rule_is_halfway_from_the_baseline_to_one():
    assert audit.LevelQuality("category", "accuracy", 0.70, 0.40, 100).trusted
    assert not audit.LevelQuality("category", "accuracy", 0.69, 0.40, 100).trusted
    assert audit.LevelQuality("category", "accuracy", 0.69, 0.40, 100).warning().startswith(
        "category rankings are not to be trusted: out-of-fold accuracy 0.690")


# ---- the "not to be trusted" warning ----------------------------------------------------------------
def random_features(frame, features):
    return frame, np.random.default_rng(3).normal(size=features.shape).astype(np.float32)


def random_labels(frame, features):
    shuffled = frame.copy()
    order = np.random.default_rng(3).permutation(len(frame))
    for column in ("subCategory", "articleType", "season", "usage"):
        shuffled[column] = frame[column].to_numpy()[order]
    return shuffled, features


@pytest.mark.parametrize("scramble", [random_features, random_labels])
def test_not_to_be_trusted_warning_fires_when_features_say_nothing_about_labels(caplog, scramble):
    frame, features = scramble(*clustered_catalog())
    with caplog.at_level(logging.WARNING, logger="fashion_hier.audit"):
        result = audit.audit_features(frame, features, LabelSpace.from_frame(frame), settings=SETTINGS)
    assert not result.trusted
    assert set(result.quality) == {"category", "subcategory", "attributes"}
    untrusted = [level for level, quality in result.quality.items() if not quality.trusted]
    assert {"category", "subcategory"} <= set(untrusted)
    assert len(result.warnings) == len(untrusted)
    for level in untrusted:
        assert f"{level} rankings are not to be trusted" in caplog.text
    assert all(record.levelno == logging.WARNING for record in caplog.records if "not to be trusted" in record.message)


def test_no_warning_on_separable_features(caplog):
    frame, features = clustered_catalog()
    with caplog.at_level(logging.INFO, logger="fashion_hier.audit"):
        result = audit.audit_features(frame, features, LabelSpace.from_frame(frame), settings=SETTINGS)
    assert result.trusted and result.warnings == ()
    assert all(quality.score > 0.95 for quality in result.quality.values())
    assert "not to be trusted" not in caplog.text
    assert "audit subcategory: out-of-fold accuracy" in caplog.text  # logged even when all is well
    summary = result.summary()
    assert summary["trusted"] is True and summary["levels"]["subcategory"]["judged"] == len(frame)
