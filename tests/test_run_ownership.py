"""A run directory is the library's own: only a folder it made is cleared, one process writes it at a time,
and a resume continues only the catalogue and splits it started with (issue 19)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from fashion_hier.cli import main as cli_main
from fashion_hier.config import ConfigError, TrainConfig
from fashion_hier.errors import RunDirectoryError, RunLockedError
from fashion_hier.rundir import RunDir

REPO_ROOT = Path(__file__).resolve().parents[1]
SIZE = 32
TINY = [f"data.image_size=[{SIZE}, {SIZE}]", "data.augment=false", "model.backbone=small_cnn", "model.weights=null",
        "model.units=8", "training.batch_size=16", "training.epochs=1", "training.jit_compile=false",
        "training.mixed_precision=float32"]


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    from fashion_hier.data import make_synthetic_catalog

    return make_synthetic_catalog(tmp_path_factory.mktemp("catalogue"), n=40, image_size=SIZE, seed=3)


def _config(catalogue: Path, output_dir: Path, *overrides: str) -> TrainConfig:
    return TrainConfig().with_overrides([f"data.labels_csv={catalogue}", f"data.image_dir={catalogue.parent / 'images'}",
                                         f"output_dir={output_dir}", "name=run", *TINY, *overrides])


def _config_file(catalogue: Path, output_dir: Path, *overrides: str) -> Path:
    path = output_dir.parent / f"{output_dir.name}.yaml"
    _config(catalogue, output_dir, *overrides).to_yaml(path)
    return path


def _user_folder(path: Path, *, with_config: bool = True) -> dict[str, str]:
    """A folder a user owns, shaped to fool a check that looks for config.yaml alone."""
    path.mkdir(parents=True)
    files = {"important.txt": "x\n", **({"config.yaml": "a: 1\n"} if with_config else {})}
    for name, text in files.items():
        (path / name).write_text(text)
    return files


def _contents(path: Path) -> dict[str, str]:
    return {entry.name: entry.read_text() for entry in path.iterdir() if entry.is_file()}


# ---- only what the library made is removed ------------------------------------------------------------------

@pytest.mark.parametrize("overwrite", [False, True])
def test_train_refuses_a_folder_it_did_not_make_and_leaves_it_as_it_was(catalogue, tmp_path, capsys, overwrite):
    files = _user_folder(tmp_path / "out" / "run")
    argv = ["train", "--config", str(_config_file(catalogue, tmp_path / "out"))] + (["--overwrite"] if overwrite else [])
    assert cli_main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "not a run directory" in error and "important.txt" in error
    assert _contents(tmp_path / "out" / "run") == files


def test_cached_feature_training_refuses_a_folder_it_did_not_make(catalogue, tmp_path):
    from fashion_hier.train import train

    files = _user_folder(tmp_path / "out" / "run", with_config=False)
    config = _config(catalogue, tmp_path / "out", "training.cache_features=true", "model.trainable_backbone=false")
    with pytest.raises(RunDirectoryError, match="not a run directory"):
        train(config, overwrite=True, verbose=0)
    assert _contents(tmp_path / "out" / "run") == files


def test_overwrite_refuses_a_run_holding_a_users_file_and_removes_nothing(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create()
    run.config.write_text("name: run\n")
    (run.path / "notes.txt").write_text("mine\n")
    with pytest.raises(RunDirectoryError, match="notes.txt"):
        run.clear()
    assert (run.path / "notes.txt").is_file() and run.config.is_file()


def test_clear_removes_every_file_a_run_writes_and_keeps_the_lock(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create()
    for path in (run.config, run.model, run.per_class("category"), run.path / ".model.keras.ab12.partial.keras"):
        path.write_text("x")
    run.backup.mkdir()
    run.backup_state.write_text("{}")
    (run.path / RunDir.LOCK).write_text("")
    run.clear()
    assert sorted(entry.name for entry in run.path.iterdir()) == [RunDir.LOCK]


def test_a_run_of_an_earlier_version_is_still_a_run_but_a_config_file_alone_is_not(tmp_path):
    earlier = RunDir(tmp_path / "earlier")
    earlier.path.mkdir()
    for path in (earlier.config, earlier.labels, earlier.model):
        path.write_text("x")
    assert earlier.is_run
    alone = RunDir(tmp_path / "alone")
    alone.path.mkdir()
    alone.config.write_text("a: 1\n")
    assert not alone.is_run


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".", "", "a\\b"])
def test_a_run_name_cannot_leave_output_dir(name):
    with pytest.raises(ConfigError, match="^name: "):  # "" is not even a string to YAML
        TrainConfig().with_overrides([f"name={name}"])


def test_train_with_cached_features_keeps_the_callers_callbacks_and_overwrite(catalogue, tmp_path):
    import keras

    from fashion_hier.train import train

    class CountEpochs(keras.callbacks.Callback):
        epochs = 0

        def on_epoch_end(self, epoch, logs=None):
            CountEpochs.epochs += 1

    config = _config(catalogue, tmp_path / "out", "training.cache_features=true", "model.trainable_backbone=false",
                     "training.epochs=2")
    run = RunDir(train(config, callbacks=[CountEpochs()], verbose=0))
    assert run.is_finished and CountEpochs.epochs == 2
    with pytest.raises(RunDirectoryError, match="finished run"):
        train(config, verbose=0)  # overwrite=False is the caller's: a finished run is never replaced unasked


# ---- one writer per run -----------------------------------------------------------------------------------

HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from fashion_hier.rundir import RunDir
    with RunDir(sys.argv[1]).training_lock():
        print("locked", flush=True)
        time.sleep(120)
""")


def _environment() -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}


@pytest.fixture
def locked_run(tmp_path):
    """A run directory whose lock another process holds (as a training would), killed with SIGKILL afterwards."""
    run = RunDir(tmp_path / "out" / "run")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run.path)], stdout=subprocess.PIPE, text=True,
                              env=_environment())
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield run, holder
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_a_second_training_of_a_run_is_refused_at_once_naming_the_holder(catalogue, locked_run, capsys):
    run, holder = locked_run
    config_path = _config_file(catalogue, run.path.parent)
    started = time.monotonic()
    assert cli_main(["train", "--config", str(config_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert f"pid {holder.pid}" in error and "being trained by another process" in error
    assert len(error.splitlines()) == 1 and time.monotonic() - started < 30
    assert not run.config.exists()  # the refused process wrote nothing


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_predict_and_evaluate_on_a_run_in_training_say_so(catalogue, locked_run, tmp_path, capsys, command):
    run, holder = locked_run
    images = catalogue.parent / "images"
    argv = [command, "--run", str(run.path)] + (["--images", str(images), "--out", str(tmp_path / "p.csv")]
                                                 if command == "predict" else [])
    assert cli_main(argv) == 2
    error = capsys.readouterr().err
    assert "training in progress" in error and f"pid {holder.pid}" in error and "resume" not in error


def test_a_lock_left_by_a_killed_process_never_blocks_the_next_training(locked_run):
    run, holder = locked_run
    assert run.training_holder() == f"pid {holder.pid} on {os.uname().nodename}"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert run.training_holder() is None
    with run.training_lock():
        assert run.training_holder() is None  # our own lock is not "another process"


# ---- a resume continues only the same catalogue and splits --------------------------------------------------

def _interrupted_run(catalogue_csv: Path, output_dir: Path) -> TrainConfig:
    """A run stopped after its first checkpoint: config, splits and label space saved, ``backup/`` present."""
    from fashion_hier.train import prepare_run

    config = _config(catalogue_csv, output_dir)
    from fashion_hier.train import resolved_config

    config = resolved_config(config)
    with RunDir(config.run_dir).training_lock():
        prepare_run(config, overwrite=False, resume=True)
    RunDir(config.run_dir).backup.mkdir()
    return config


@pytest.fixture
def own_catalogue(catalogue, tmp_path):
    """A copy of the catalogue this test may change (its images stay shared, read-only)."""
    copy = tmp_path / "catalogue" / catalogue.name
    copy.parent.mkdir()
    frame = pd.read_csv(catalogue)
    (copy.parent / "images").symlink_to(catalogue.parent / "images")
    frame.iloc[:32].to_csv(copy, index=False)  # 8 rows held back: "rows added" later
    return copy, frame


def test_resume_refuses_a_catalogue_with_rows_added_naming_the_change(own_catalogue, tmp_path):
    from fashion_hier.train import prepare_run

    csv, frame = own_catalogue
    config = _interrupted_run(csv, tmp_path / "out")
    frame.to_csv(csv, index=False)  # 8 rows added while the run was stopped
    with pytest.raises(RunDirectoryError, match=r"catalogue changed since this run started \(8 rows added"):
        with RunDir(config.run_dir).training_lock():
            prepare_run(config, overwrite=False, resume=True)
    assert RunDir(config.run_dir).backup.is_dir()  # nothing of the run was touched


def test_resume_refuses_relabelled_and_removed_rows(own_catalogue, tmp_path):
    from fashion_hier.train import prepare_run

    csv, frame = own_catalogue
    config = _interrupted_run(csv, tmp_path / "out")
    changed = frame.iloc[:31].copy()  # the last row gone
    changed.loc[0, "season"] = "Winter" if changed.loc[0, "season"] != "Winter" else "Summer"
    changed.to_csv(csv, index=False)
    with pytest.raises(RunDirectoryError, match=r"1 rows gone .*1 rows relabelled"):
        with RunDir(config.run_dir).training_lock():
            prepare_run(config, overwrite=False, resume=True)


def test_resume_with_the_same_catalogue_continues_and_overwrite_starts_again(own_catalogue, tmp_path):
    from fashion_hier.train import prepare_run

    csv, frame = own_catalogue
    config = _interrupted_run(csv, tmp_path / "out")
    run = RunDir(config.run_dir)
    with run.training_lock():
        prepared = prepare_run(config, overwrite=False, resume=True)
    assert run.backup.is_dir() and len(prepared.train_frame) > 0
    frame.to_csv(csv, index=False)
    with run.training_lock():
        prepared = prepare_run(config, overwrite=True, resume=True)
    assert not run.backup.exists()
    assert sum(len(pd.read_csv(run.split(name))) for name in ("train", "validation", "test")) == len(frame)


def test_the_cli_refuses_the_changed_resume_in_one_line(own_catalogue, tmp_path, capsys):
    csv, frame = own_catalogue
    config = _interrupted_run(csv, tmp_path / "out")
    frame.to_csv(csv, index=False)
    config_path = tmp_path / "config.yaml"
    config.to_yaml(config_path)
    assert cli_main(["train", "--config", str(config_path)]) == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]  # after the catalogue report's log lines
    assert message.startswith("fashion-hier train: ") and "8 rows added" in message and "--overwrite" in message


def test_demo_overwrite_never_removes_a_users_files(tmp_path, capsys):
    files = _user_folder(tmp_path / "home", with_config=False)
    assert cli_main(["demo", "--out", str(tmp_path / "home"), "--overwrite", "--n", "60", "--epochs", "1"]) == 2
    assert "holds files the demo did not write (important.txt)" in capsys.readouterr().err
    assert _contents(tmp_path / "home") == files


def test_a_reader_probing_the_lock_at_the_same_moment_is_not_taken_for_a_training(tmp_path):
    """Readers (Spark's workers loading the model at once) probe the run's lock for an instant; a probe that
    finds another probe holding it waits that instant out instead of saying 'training in progress'."""
    run = RunDir(tmp_path / "run")
    run.create()
    probe = textwrap.dedent(f"""
        import sys, time, filelock
        lock = filelock.FileLock({str(run.path / RunDir.LOCK)!r})
        lock.acquire()
        print("held", flush=True)
        time.sleep(float(sys.argv[1]))
        lock.release()
    """)
    for seconds, expected_training in ((0.1, False), (5.0, True)):
        other = subprocess.Popen([sys.executable, "-c", probe, str(seconds)], stdout=subprocess.PIPE, text=True)
        assert other.stdout.readline().strip() == "held"
        try:
            assert (run.training_holder() is not None) is expected_training
        finally:
            other.wait(timeout=30)
