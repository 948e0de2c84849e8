"""Faults during training: a SIGKILL at any point resumes exactly; a full disk keeps the last good checkpoint;
Ctrl-C and user mistakes are one line with the documented exit codes; a truncated model is never a finished run."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from fashion_hier.atomic import DiskFullError  # noqa: E402
from fashion_hier.checkpoints import Backup, TrainingState  # noqa: E402
from fashion_hier.config import TrainConfig  # noqa: E402
from fashion_hier.rundir import RunDir  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SIZE = 32
# dropout, augmentation, shuffling and a frozen first stage: every source of randomness and state a
# resume must restore (the optimiser's moments, the dropout seed states, the loader's epoch).
TINY = [f"data.image_size=[{SIZE}, {SIZE}]", "data.augment=true", "model.backbone=small_cnn", "model.weights=null",
        "model.units=8", "model.dropout=0.3", "training.batch_size=8", "training.epochs=4",
        "training.freeze_epochs=1", "training.finetune_learning_rate=0.0005", "training.jit_compile=false",
        "training.mixed_precision=float32", "training.run_eagerly=true"]

# Trains in a fresh process, sending itself SIGNAL at a given point: after epoch KILL_EPOCH's checkpoint
# (KILL_BATCH < 0) or after batch KILL_BATCH of that epoch. SIGKILL: no cleanup of any kind; SIGINT: Ctrl-C,
# exit 130 as the CLI does.
TRAIN_AND_KILL = textwrap.dedent("""
    import os, signal, sys
    import keras
    from fashion_hier.config import TrainConfig
    from fashion_hier.train import train

    config_path, kill_epoch, kill_batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    kill_signal = getattr(signal, sys.argv[4])

    class Kill(keras.callbacks.Callback):
        epoch = None
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == kill_epoch and batch == kill_batch:
                os.kill(os.getpid(), kill_signal)
        def on_epoch_end(self, epoch, logs=None):
            if epoch == kill_epoch and kill_batch < 0:
                os.kill(os.getpid(), kill_signal)

    try:
        train(TrainConfig.from_yaml(config_path), callbacks=[Kill()], verbose=0)
    except KeyboardInterrupt:
        sys.exit(130)
""")


def _environment() -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}


def _train_in_subprocess(config_path: Path, kill_epoch: int = -1, kill_batch: int = -1,
                         kill_signal: str = "SIGKILL") -> int:
    done = subprocess.run([sys.executable, "-c", TRAIN_AND_KILL, str(config_path), str(kill_epoch), str(kill_batch),
                           kill_signal], capture_output=True, text=True, env=_environment(), timeout=300)
    if done.returncode not in (0, -9, 130):
        raise AssertionError(done.stderr[-3000:])
    return done.returncode


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    from fashion_hier.data import make_synthetic_catalog

    return make_synthetic_catalog(tmp_path_factory.mktemp("catalogue"), n=48, image_size=SIZE, seed=5)


def _config(catalogue: Path, output_dir: Path, name: str, *overrides: str) -> TrainConfig:
    return TrainConfig().with_overrides([
        f"data.labels_csv={catalogue}", f"data.image_dir={catalogue.parent / 'images'}",
        f"output_dir={output_dir}", f"name={name}", *TINY, *overrides])


def _final_weights(run_dir: Path) -> list[np.ndarray]:
    import fashion_hier.losses  # noqa: F401  (registers the custom losses and layers)
    import fashion_hier.models  # noqa: F401

    return keras.saving.load_model(RunDir(run_dir).model, compile=False).get_weights()


@pytest.fixture(scope="module")
def uninterrupted(catalogue, tmp_path_factory):
    root = tmp_path_factory.mktemp("uninterrupted")
    config_path = _config(catalogue, root, "run").to_yaml(root / "config.yaml")
    assert _train_in_subprocess(config_path) == 0
    return root / "run"


@pytest.mark.parametrize("kill_epoch, kill_batch, kill_signal, epochs_done",
                         [(1, -1, "SIGKILL", 2), (2, 0, "SIGKILL", 2), (3, -1, "SIGKILL", 4), (2, 1, "SIGINT", 2)],
                         ids=["after-epoch-2-checkpoint", "mid-epoch-3", "after-the-last-checkpoint",
                              "ctrl-c-mid-epoch-3"])
@pytest.mark.slow
def test_a_run_killed_and_rerun_ends_with_the_weights_of_an_uninterrupted_run(
        catalogue, uninterrupted, tmp_path, kill_epoch, kill_batch, kill_signal, epochs_done):
    config_path = _config(catalogue, tmp_path, "run").to_yaml(tmp_path / "config.yaml")
    stopped = _train_in_subprocess(config_path, kill_epoch, kill_batch, kill_signal)
    assert stopped == {"SIGKILL": -9, "SIGINT": 130}[kill_signal]  # stopped, not finished
    # Ctrl-C stops at the next batch's end: the cut-short epoch 3 is not recorded, and the rerun repeats it
    run = RunDir(tmp_path / "run")
    assert not run.is_finished and not run.model.exists()
    assert TrainingState.load(Backup.of(run)).epochs_done == epochs_done

    assert _train_in_subprocess(config_path) == 0
    assert run.is_finished and not run.backup.exists()
    for resumed, reference in zip(_final_weights(run.path), _final_weights(uninterrupted), strict=True):
        np.testing.assert_allclose(resumed, reference, rtol=0, atol=1e-6)
    history, reference_history = _history(run.path), _history(uninterrupted)
    assert history["epoch"].tolist() == [0, 1, 2, 3]
    pd.testing.assert_frame_equal(history, reference_history, rtol=1e-6)


@pytest.mark.slow
def test_a_tfdata_run_killed_mid_epoch_resumes_to_the_uninterrupted_weights(catalogue, tmp_path):
    """tf.data's epoch order and augmentation seeds come from (seed, epoch), set by the trainer, not from how
    often the process iterated the dataset: a resumed tfdata run reads the batches an uninterrupted one did."""
    tfdata = ("data.loader=tfdata",)
    reference = _config(catalogue, tmp_path / "reference", "run", *tfdata).to_yaml(tmp_path / "reference.yaml")
    assert _train_in_subprocess(reference) == 0
    config_path = _config(catalogue, tmp_path / "killed", "run", *tfdata).to_yaml(tmp_path / "killed.yaml")
    assert _train_in_subprocess(config_path, kill_epoch=2, kill_batch=0) == -9
    assert TrainingState.load(Backup.of(RunDir(tmp_path / "killed" / "run"))).epochs_done == 2
    assert _train_in_subprocess(config_path) == 0
    for resumed, expected in zip(_final_weights(tmp_path / "killed" / "run"), _final_weights(tmp_path / "reference" / "run"),
                                 strict=True):
        np.testing.assert_allclose(resumed, expected, rtol=0, atol=1e-6)


def _fail_with_enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.slow
def test_disk_full_at_a_checkpoint_keeps_the_last_good_one_and_the_rerun_resumes(catalogue, tmp_path, monkeypatch):
    from fashion_hier import checkpoints
    from fashion_hier.train import train

    config = _config(catalogue, tmp_path, "run", "training.epochs=3", "training.freeze_epochs=0")
    real_savez, calls = np.savez, []

    def savez_then_full(handle, **arrays):  # the first checkpoint is written, the second finds the disk full
        calls.append(1)
        if len(calls) == 2:
            handle.write(b"partial")
            _fail_with_enospc()
        real_savez(handle, **arrays)

    monkeypatch.setattr(checkpoints.np, "savez", savez_then_full)
    with pytest.raises(DiskFullError, match="no space left on the device"):
        train(config, verbose=0)
    run = RunDir(tmp_path / "run")
    state = TrainingState.load(Backup.of(run))
    assert state.epochs_done == 1 and [path.name for path in Backup.of(run).checkpoints()] == [state.checkpoint]
    assert not [path for path in run.backup.iterdir() if path.name.endswith(".partial")]
    assert not run.is_finished

    monkeypatch.setattr(checkpoints.np, "savez", real_savez)
    train(config, verbose=0)
    assert run.is_finished and pd.read_csv(run.history)["epoch"].tolist() == [0, 1, 2]


def test_disk_full_at_the_final_save_leaves_no_model_and_no_finished_run(catalogue, tmp_path, monkeypatch):
    from fashion_hier.train import train

    config = _config(catalogue, tmp_path, "run", "training.epochs=1", "training.freeze_epochs=0")

    calls = []

    def save_then_full(self, filepath, *args, **kwargs):  # model.keras, the one model file a run saves, is cut short
        calls.append(filepath)
        Path(filepath).write_bytes(b"truncated")
        _fail_with_enospc()

    monkeypatch.setattr(keras.Model, "save", save_then_full)
    with pytest.raises(DiskFullError):
        train(config, verbose=0)
    run = RunDir(tmp_path / "run")
    assert len(calls) == 1 and not run.best.exists()  # best.keras is linked to model.keras only once that is whole
    assert not run.model.exists() and not run.is_finished and not run.is_legacy
    assert TrainingState.load(Backup.of(run)).epochs_done == 1  # the backup survives: the rerun finishes the run

    monkeypatch.undo()
    train(config, verbose=0)
    assert run.is_finished and len(_final_weights(run.path)) > 0


def test_disk_full_through_the_cli_is_one_line_and_exit_code_2(catalogue, tmp_path, monkeypatch, capsys):
    from fashion_hier.cli import main

    config_path = _config(catalogue, tmp_path, "run", "training.epochs=1").to_yaml(tmp_path / "config.yaml")
    monkeypatch.setattr(keras.Model, "save", lambda self, *args, **kwargs: _fail_with_enospc())
    assert main(["train", "-q", "--config", str(config_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("fashion-hier train: no space left on the device while writing ") and error.count("\n") == 1


def test_ctrl_c_is_one_line_and_exit_code_130(catalogue, tmp_path, monkeypatch, capsys):
    from fashion_hier import train as train_module
    from fashion_hier.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train", interrupted)
    config_path = _config(catalogue, tmp_path, "run").to_yaml(tmp_path / "config.yaml")
    assert main(["train", "--config", str(config_path)]) == 130
    assert capsys.readouterr().err == "fashion-hier train: interrupted; run the same command again to resume\n"


@pytest.mark.parametrize("arguments, message", [
    (["--config", "{missing}"], "does not exist"),
    (["--config", "{config}", "--set", "training.epochs=0"], "training.epochs: expected an integer >= 1"),
    (["--config", "{config}", "--set", "data.labels_csv=null"], "data.labels_csv and data.image_dir must be set"),
])
def test_a_user_mistake_is_one_line_and_exit_code_2_and_debug_shows_the_traceback(
        catalogue, tmp_path, capsys, arguments, message):
    from fashion_hier.cli import main

    config_path = _config(catalogue, tmp_path, "run").to_yaml(tmp_path / "config.yaml")
    arguments = [arg.format(missing=tmp_path / "missing.yaml", config=config_path) for arg in arguments]
    assert main(["train", *arguments]) == 2
    error = capsys.readouterr().err
    assert error.startswith("fashion-hier train: ") and message in error and error.count("\n") == 1
    with pytest.raises((ValueError, FileNotFoundError), match=message.split(" ")[0]):
        main(["train", "--debug", *arguments])


@pytest.mark.slow
def test_ctrl_c_in_a_real_training_process_exits_130_and_the_rerun_resumes(catalogue, tmp_path):
    import signal
    import time

    # far more epochs than can run before the signal: on an idle fast CPU, 30 tiny epochs could all finish
    # between the first checkpoint and the SIGINT, and the run then (rightly) exited 0
    config_path = _config(catalogue, tmp_path, "run", "training.epochs=100000").to_yaml(tmp_path / "config.yaml")
    command = [sys.executable, "-m", "fashion_hier.cli", "train", "--config", str(config_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_environment())
    run = RunDir(tmp_path / "run")
    deadline = time.monotonic() + 240
    while TrainingState.load(Backup.of(run)).epochs_done < 1 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=60)  # it stops at the next batch's end (callbacks.StopOnInterrupt)
    finally:
        process.kill()    # no-op once it has exited; never leave a 100,000-epoch run behind
    assert process.returncode == 130, stderr[-2000:]
    lines = stderr.strip().splitlines()
    assert lines[-1] == "fashion-hier train: interrupted; run the same command again to resume", stderr[-2000:]
    assert "Ctrl-C: stopping after the current batch" in lines[-2]
    assert not run.is_finished and TrainingState.load(Backup.of(run)).epochs_done >= 1


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 24 MiB tmpfs (root only): a real full disk, h5py and zip writers included; resized with ``remount``."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount_point)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root; the patched-writer tests above cover disk full")

    def resize(megabytes: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={megabytes}m", str(mount_point)], check=True)

    yield mount_point, resize
    subprocess.run(["umount", str(mount_point)], check=False)


@pytest.mark.slow
def test_a_really_full_disk_is_one_line_exit_2_no_crash_and_the_rerun_on_more_space_finishes(catalogue, small_tmpfs):
    mount_point, resize = small_tmpfs
    config_path = _config(catalogue, mount_point, "run", "training.epochs=3").to_yaml(catalogue.parent / "disk.yaml")
    command = [sys.executable, "-m", "fashion_hier.cli", "train", "-q", "--config", str(config_path)]
    full = subprocess.run(command, capture_output=True, text=True, env=_environment(), timeout=300)
    assert full.returncode == 2, full.stderr[-3000:]  # not a segfault (-11), not a traceback (1)
    last_line = full.stderr.strip().splitlines()[-1]
    assert last_line.startswith("fashion-hier train: no space left on the device while writing "), full.stderr[-3000:]
    run = RunDir(mount_point / "run")
    assert not run.is_finished and not any(path.name.endswith(".partial") for path in run.path.rglob("*"))

    resize(200)
    done = subprocess.run(command, capture_output=True, text=True, env=_environment(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert run.is_finished and pd.read_csv(run.history)["epoch"].tolist() == [0, 1, 2]


def _history(run_dir: Path, name: str = RunDir.HISTORY) -> pd.DataFrame:
    """A run's history CSV without the wall seconds of each epoch (the one column a resume cannot reproduce)."""
    return pd.read_csv(Path(run_dir) / name).drop(columns="seconds")
