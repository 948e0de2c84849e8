"""Damaged files: a truncated or overwritten model, cache, manifest, index or backup is one line naming the file,
what is wrong and what to do (exit code 2 from the CLI), never a traceback; a damaged newest backup falls back
to the previous checkpoint and the resumed run still ends with the weights of an uninterrupted one."""
from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from fashion_hier.checkpoints import (  # noqa: E402
    Backup,
    TrainingState,
    load_model_weights,
    restore_checkpoint,
    save_checkpoint,
    save_model_file,
)
from fashion_hier.cli import main  # noqa: E402
from fashion_hier.errors import DamagedFileError  # noqa: E402
from fashion_hier.features import MANIFEST_FILE, extract_features, load_feature_cache  # noqa: E402
from fashion_hier.finetune import extract_activations, load_activation_cache  # noqa: E402
from fashion_hier.jsonio import read_json  # noqa: E402
from fashion_hier.predict import Predictor  # noqa: E402
from fashion_hier.rundir import RunDir  # noqa: E402
from test_faults import TRAIN_AND_KILL, _config, _environment, _final_weights, _history, _train_in_subprocess  # noqa: E402
from test_faults import catalogue, uninterrupted  # noqa: E402, F401  (fixtures: the same run as the resume tests)
from tiny_run import train_tiny_run  # noqa: E402

SIZE = 32
DAMAGES = ("truncated", "random-bytes")


def _damage(path: Path, how: str) -> Path:
    """Cut ``path`` to half its size, or overwrite it with as many random bytes."""
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2] if how == "truncated" else np.random.default_rng(0).bytes(len(data)))
    return path


def _one_line_error(capsys, command: str, path: Path) -> str:
    """The CLI's stderr: exactly one line, ``fashion-hier COMMAND: PATH is damaged (...); remedy``."""
    error = capsys.readouterr().err
    assert error.startswith(f"fashion-hier {command}: {path} is damaged (") and error.count("\n") == 1, error
    return error


# ---- model files ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("damaged_run"), size=SIZE)


@pytest.fixture
def run_copy(run_dir, tmp_path):
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_model_file_is_named_by_predictor_load_and_predict_exits_2(run_copy, tmp_path, capsys, how):
    model_file = _damage(RunDir(run_copy).model, how)
    with pytest.raises(DamagedFileError, match="not a complete zip archive") as caught:
        Predictor.load(run_copy)
    assert caught.value.path == str(model_file) and "train the run again" in str(caught.value)

    images = run_copy / "splits" / "test.csv"
    assert main(["predict", "-q", "--run", str(run_copy), "--images", str(images),
                 "--out", str(tmp_path / "predictions.csv")]) == 2
    assert "copy the file again" in _one_line_error(capsys, "predict", model_file)


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_best_checkpoint_is_named_by_evaluate(run_copy, capsys, how):
    best = RunDir(run_copy).best
    assert best.is_file()
    _damage(best, how)
    assert main(["evaluate", "-q", "--run", str(run_copy), "--checkpoint", RunDir.BEST, "--no-progress"]) == 2
    _one_line_error(capsys, "evaluate", best)


def test_a_model_file_damaged_inside_is_caught_by_its_checksums(run_copy):
    model_file = RunDir(run_copy).model
    data = bytearray(model_file.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)  # the zip's directory intact, one member's bytes not
    model_file.write_bytes(bytes(data))
    with pytest.raises(DamagedFileError, match="fails its checksum"):
        Predictor.load(run_copy)


# ---- feature and activation caches -----------------------------------------------------------

@pytest.fixture(scope="module")
def image_paths(run_dir):
    return sorted(pd.read_csv(run_dir / "splits" / "train.csv")["image_path"].astype(str))[:6]


@pytest.fixture(scope="module")
def feature_cache(image_paths, tmp_path_factory):
    directory = tmp_path_factory.mktemp("features") / "cache"
    extract_features(image_paths, backbone="small_cnn", weights=None, image_size=(SIZE, SIZE), cache_dir=directory,
                     batch_size=4, progress=False)
    return directory


@pytest.fixture(scope="module")
def activation_cache(image_paths, tmp_path_factory):
    directory = tmp_path_factory.mktemp("activations") / "cache"
    extract_activations(image_paths, cache_dir=directory, backbone="small_cnn", weights=None,
                        image_size=(SIZE, SIZE), cut_layer="stage2_pool", batch_size=4)
    return directory


@pytest.mark.parametrize("how, problem", [("truncated", "shorter than the .* bytes of the 6 rows manifest.json"),
                                          ("random-bytes", "not a NumPy array file")])
def test_a_damaged_features_file_names_itself_and_the_cache_to_delete(feature_cache, tmp_path, how, problem):
    cache = Path(shutil.copytree(feature_cache, tmp_path / "cache"))
    features = _damage(cache / "features.npy", how)
    with pytest.raises(DamagedFileError, match=problem) as caught:
        load_feature_cache(cache)
    assert caught.value.path == str(features)
    assert caught.value.remedy == f"delete the cache directory {cache} and run the same command again to recompute it"


@pytest.mark.parametrize("how, problem", [("truncated", "shorter than the .* bytes of the 6 rows manifest.json"),
                                          ("random-bytes", "not a NumPy array file")])
def test_a_damaged_activations_file_names_itself_and_the_cache_to_delete(activation_cache, tmp_path, how, problem):
    cache = Path(shutil.copytree(activation_cache, tmp_path / "cache"))
    activations = _damage(cache / "activations.npy", how)
    with pytest.raises(DamagedFileError, match=problem) as caught:
        load_activation_cache(cache)
    assert caught.value.path == str(activations) and f"delete the cache directory {cache}" in caught.value.remedy


@pytest.mark.parametrize("how, problem", [("truncated", "not valid JSON"), ("random-bytes", "not UTF-8 text")])
@pytest.mark.parametrize("kind", ["features", "activations"])
def test_a_damaged_cache_manifest_names_itself(feature_cache, activation_cache, tmp_path, kind, how, problem):
    cache, load = ((feature_cache, load_feature_cache) if kind == "features"
                   else (activation_cache, load_activation_cache))
    cache = Path(shutil.copytree(cache, tmp_path / "cache"))
    manifest = _damage(cache / MANIFEST_FILE, how)
    with pytest.raises(DamagedFileError, match=problem) as caught:
        load(cache)
    assert caught.value.path == str(manifest) and f"delete the cache directory {cache}" in caught.value.remedy


def test_a_cache_whose_paths_are_cut_short_is_named(feature_cache, tmp_path):
    cache = Path(shutil.copytree(feature_cache, tmp_path / "cache"))
    _damage(cache / "paths.txt", "truncated")
    with pytest.raises(DamagedFileError, match="3 paths, manifest.json records 6 rows"):
        load_feature_cache(cache)


def test_overwrite_recomputes_a_cache_with_a_damaged_manifest(feature_cache, image_paths, tmp_path):
    cache = Path(shutil.copytree(feature_cache, tmp_path / "cache"))
    _damage(cache / MANIFEST_FILE, "truncated")
    features = extract_features(image_paths, backbone="small_cnn", weights=None, image_size=(SIZE, SIZE),
                                cache_dir=cache, overwrite=True, progress=False)
    assert features.shape == (6, 256) and load_feature_cache(cache).manifest["rows_done"] == 6


def test_features_command_with_a_damaged_cache_exits_2_in_one_line(run_copy, feature_cache, tmp_path, capsys):
    cache = Path(shutil.copytree(feature_cache, tmp_path / "cache"))
    features = _damage(cache / "features.npy", "truncated")
    assert main(["features", "-q", "--run", str(run_copy), "--cache", str(cache), "--extract-only"]) == 2
    assert f"delete the cache directory {cache}" in _one_line_error(capsys, "features", features)


# ---- similarity index -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def index_dir(run_dir, image_paths, tmp_path_factory):
    pytest.importorskip("faiss", reason="the search extra is not installed: pip install 'fashion-hier[search]'")
    from fashion_hier.search import build_index

    directory = tmp_path_factory.mktemp("index") / "index"
    build_index(run_dir, image_paths, directory)
    return directory


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("name, problem", [("index.json", "not valid JSON|not UTF-8 text"),
                                           ("index.faiss", "FAISS cannot read it")])
def test_a_damaged_index_file_is_named_by_load_index_and_similar_exits_2(
        run_dir, index_dir, image_paths, tmp_path, capsys, name, problem, how):
    from fashion_hier.search import load_index

    index = Path(shutil.copytree(index_dir, tmp_path / "index"))
    damaged = _damage(index / name, how)
    with pytest.raises(DamagedFileError, match=problem) as caught:
        load_index(index, run=run_dir)
    assert caught.value.path == str(damaged) and f"--out {index}" in caught.value.remedy

    assert main(["similar", "-q", "--index", str(index), "--run", str(run_dir), image_paths[0]]) == 2
    assert "rebuild the index with 'fashion-hier index" in _one_line_error(capsys, "similar", damaged)


# ---- backups: state.json and epoch checkpoints ----------------------------------------------------

def _tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _backup(tmp_path: Path, epochs: int = 3) -> RunDir:
    """A backup of ``epochs`` checkpoints whose kernel holds the number of epochs done."""
    run, model, state = RunDir(tmp_path / "run"), _tiny_model(), TrainingState()
    for epoch in range(epochs):
        model.get_layer("dense").kernel.assign(np.full((3, 2), epoch + 1.0))
        state.history.append({"epoch": epoch, "loss": 1.0 / (epoch + 1)})
        state.epochs_done = epoch + 1
        save_checkpoint(Backup.of(run), model, state)
    return run


def _restored_kernel(run: RunDir, state: TrainingState) -> np.ndarray:
    model = _tiny_model()
    restore_checkpoint(Backup.of(run), model, state, optimizer=True)
    return model.get_layer("dense").kernel.numpy()


def test_a_backup_keeps_the_newest_checkpoint_and_the_one_before_each_with_its_state(tmp_path):
    run = _backup(tmp_path)
    assert sorted(path.name for path in run.backup.glob("*.npz")) == ["epoch-0002.npz", "epoch-0003.npz"]
    state = TrainingState.load(Backup.of(run))
    assert (state.epochs_done, state.checkpoint, len(state.history)) == (3, "epoch-0003.npz", 3)
    np.testing.assert_array_equal(_restored_kernel(run, state), np.full((3, 2), 3.0))


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_newest_checkpoint_resumes_from_the_one_before_with_its_history(tmp_path, caplog, how):
    run = _backup(tmp_path)
    _damage(run.backup_checkpoint(3), how)
    with caplog.at_level(logging.WARNING, logger="fashion_hier"):
        state = TrainingState.load(Backup.of(run))
    assert (state.epochs_done, state.checkpoint) == (2, "epoch-0002.npz")
    assert [row["epoch"] for row in state.history] == [0, 1]
    np.testing.assert_array_equal(_restored_kernel(run, state), np.full((3, 2), 2.0))
    assert "backup/epoch-0003.npz is damaged (" in caplog.text
    assert "resuming from epoch 2 (backup/epoch-0002.npz)" in caplog.text


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_state_file_resumes_from_the_newest_whole_checkpoint(tmp_path, caplog, how):
    run = _backup(tmp_path)
    _damage(run.backup_state, how)
    with pytest.raises(DamagedFileError, match="state.json is damaged"):
        read_json(run.backup_state, remedy="-")
    with caplog.at_level(logging.WARNING, logger="fashion_hier"):
        state = TrainingState.load(Backup.of(run))
    assert (state.epochs_done, state.checkpoint, len(state.history)) == (3, "epoch-0003.npz", 3)
    assert "backup/state.json is damaged (" in caplog.text and "resuming from epoch 3" in caplog.text


def test_a_damaged_state_file_and_newest_checkpoint_resume_from_the_one_before(tmp_path, caplog):
    run = _backup(tmp_path)
    _damage(run.backup_state, "truncated")
    _damage(run.backup_checkpoint(3), "truncated")
    with caplog.at_level(logging.WARNING, logger="fashion_hier"):
        state = TrainingState.load(Backup.of(run))
    assert (state.epochs_done, len(state.history)) == (2, 2)
    assert "backup/state.json is damaged" in caplog.text and "backup/epoch-0003.npz is damaged" in caplog.text


@pytest.mark.parametrize("how", DAMAGES)
def test_no_whole_checkpoint_left_is_a_damaged_file_error_saying_start_afresh(tmp_path, how):
    run = _backup(tmp_path)
    for epochs in (2, 3):
        _damage(run.backup_checkpoint(epochs), how)
    with pytest.raises(DamagedFileError, match="run again with --overwrite to start afresh") as caught:
        TrainingState.load(Backup.of(run))
    assert caught.value.path == str(run.backup_checkpoint(3))
    assert "no other checkpoint" in str(caught.value)


def test_a_damaged_best_model_is_named_when_its_weights_are_loaded(tmp_path):
    model = _tiny_model()
    best = _damage(save_model_file(model, tmp_path / RunDir.BEST), "truncated")
    with pytest.raises(DamagedFileError, match="best.keras is damaged .*start afresh"):
        load_model_weights(model, best)


@pytest.mark.slow
def test_a_run_killed_after_epoch_3_with_a_truncated_checkpoint_resumes_to_the_uninterrupted_weights(
        catalogue, uninterrupted, tmp_path):
    config_path = _config(catalogue, tmp_path, "run").to_yaml(tmp_path / "config.yaml")
    assert _train_in_subprocess(config_path, kill_epoch=2) == -9
    run = RunDir(tmp_path / "run")
    assert TrainingState.load(Backup.of(run)).epochs_done == 3
    _damage(run.backup_checkpoint(3), "truncated")

    resumed = subprocess.run([sys.executable, "-c", TRAIN_AND_KILL, str(config_path), "-1", "-1", "SIGKILL"],
                             capture_output=True, text=True, env=_environment(), timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "backup/epoch-0003.npz is damaged (" in resumed.stderr, resumed.stderr[-3000:]
    assert "resuming from epoch 2 (backup/epoch-0002.npz)" in resumed.stderr
    assert run.is_finished and not run.backup.exists()
    for weights, reference in zip(_final_weights(run.path), _final_weights(uninterrupted), strict=True):
        np.testing.assert_allclose(weights, reference, rtol=0, atol=1e-6)
    pd.testing.assert_frame_equal(_history(run.path), _history(uninterrupted), rtol=1e-6)


@pytest.mark.slow
def test_train_with_no_whole_checkpoint_exits_2_in_one_line(catalogue, tmp_path, capsys):
    config_path = _config(catalogue, tmp_path, "run", "training.epochs=2",
                          "training.freeze_epochs=0").to_yaml(tmp_path / "config.yaml")
    assert _train_in_subprocess(config_path, kill_epoch=1) == -9
    run = RunDir(tmp_path / "run")
    for epochs in (1, 2):
        _damage(run.backup_checkpoint(epochs), "truncated")
    assert main(["train", "-q", "--config", str(config_path)]) == 2
    assert "run again with --overwrite to start afresh" in _one_line_error(capsys, "train", run.backup_checkpoint(2))
