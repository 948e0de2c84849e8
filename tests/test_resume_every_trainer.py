"""Every trainer resumes exactly: the full image model, the head on cached features and the partial fine-tune
from cached activations share one training loop (``fashion_hier.training_loop``), so a run SIGKILLed in any
of their fits and run again ends with the weights and history of a run that was never interrupted."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from fashion_hier.checkpoints import Backup, TrainingState  # noqa: E402
from fashion_hier.config import TrainConfig  # noqa: E402
from fashion_hier.rundir import RunDir  # noqa: E402
from test_faults import SIZE, TINY, _environment, _final_weights, _history  # noqa: E402
from test_faults import catalogue  # noqa: E402, F401  (fixture: the resume tests' catalogue)

pytestmark = pytest.mark.slow  # three trainers, each run three times in fresh processes

# Trains in a fresh process and SIGKILLs itself at the end of epoch KILL_EPOCH of its KILL_FIT-th fit
# (0: the first; the cached-feature trainer fits the head, then the fine-tune), after that epoch's checkpoint.
TRAIN_AND_KILL = textwrap.dedent("""
    import os, signal, sys
    import keras
    from fashion_hier.config import TrainConfig
    from fashion_hier.train import train

    config_path, kill_fit, kill_epoch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

    class Kill(keras.callbacks.Callback):
        fits = -1
        def on_train_begin(self, logs=None):
            Kill.fits += 1
        def on_epoch_end(self, epoch, logs=None):
            if Kill.fits == kill_fit and epoch == kill_epoch:
                os.kill(os.getpid(), signal.SIGKILL)

    train(TrainConfig.from_yaml(config_path), callbacks=[Kill()], verbose=0)
""")

# (overrides, the fit to kill, the epoch of that fit, the backup folder that fit keeps, the history files)
TRAINERS = {
    "images": ([], 1, 1, None, [RunDir.HISTORY]),  # fit 0 is the frozen first stage (epoch 0), fit 1 the rest
    "head": (["training.cache_features=true", "model.trainable_backbone=false", "training.freeze_epochs=0",
              "data.flip_features=true", "data.augment=false"], 0, 1, RunDir.HEAD_BACKUP, [RunDir.HISTORY]),
    "finetune": (["training.cache_features=true", "model.trainable_backbone=false", "training.freeze_epochs=0",
                  "data.augment=false", "model.backbone=resnet50", "model.trainable_from=conv4_block6_out",
                  "training.epochs=2", "training.finetune_epochs=3", "training.finetune_learning_rate=0.001",
                  "training.finetune_crop=0.7"], 1, 1, RunDir.FINETUNE_BACKUP,
                 [RunDir.HISTORY, RunDir.FINETUNE_HISTORY]),
}


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory) -> Path:
    """A fixed random ResNet-50: every process builds the same backbone from it (no ImageNet download)."""
    keras.utils.set_random_seed(3)
    network = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3), pooling="avg")
    path = tmp_path_factory.mktemp("weights") / "resnet50.weights.h5"
    network.save_weights(path)
    return path


def _config_file(catalogue: Path, root: Path, name: str, overrides: list[str], resnet_weights: Path) -> Path:
    """Both runs of a test share ``root``, so the cached-feature trainers read the same feature caches (a
    ``weights=None`` backbone is drawn afresh by each extraction)."""
    weights = [f"model.weights={resnet_weights}"] if "model.backbone=resnet50" in overrides else []
    config = TrainConfig().with_overrides([
        f"data.labels_csv={catalogue}", f"data.image_dir={catalogue.parent / 'images'}", f"output_dir={root}",
        f"name={name}", *TINY, *overrides, *weights])
    root.mkdir(parents=True, exist_ok=True)
    return config.to_yaml(root / f"{name}.yaml")


def _train(config_path: Path, kill_fit: int = -1, kill_epoch: int = -1) -> int:
    done = subprocess.run([sys.executable, "-c", TRAIN_AND_KILL, str(config_path), str(kill_fit), str(kill_epoch)],
                          capture_output=True, text=True, env=_environment(), timeout=600)
    if done.returncode not in (0, -9):
        raise AssertionError(done.stderr[-3000:])
    return done.returncode


@pytest.mark.parametrize("trainer", sorted(TRAINERS))
def test_a_run_killed_in_any_trainer_resumes_to_the_uninterrupted_weights(catalogue, resnet_weights, tmp_path,
                                                                         trainer):
    overrides, kill_fit, kill_epoch, backup_name, histories = TRAINERS[trainer]
    reference = _config_file(catalogue, tmp_path.resolve(), "reference", overrides, resnet_weights)
    assert _train(reference) == 0

    killed = _config_file(catalogue, tmp_path.resolve(), "killed", overrides, resnet_weights)
    assert _train(killed, kill_fit, kill_epoch) == -9
    run = RunDir(tmp_path / "killed")
    assert not run.is_finished and not run.model.exists()
    assert TrainingState.load(Backup.of(run, backup_name)).epochs_done == kill_epoch + 1  # that fit's checkpoint

    assert _train(killed) == 0
    assert run.is_finished and not run.backup.exists()
    for resumed, uninterrupted in zip(_final_weights(run.path), _final_weights(tmp_path / "reference"), strict=True):
        np.testing.assert_allclose(resumed, uninterrupted, rtol=0, atol=1e-6)
    for name in histories:
        pd.testing.assert_frame_equal(_history(run.path, name), _history(tmp_path / "reference", name), rtol=1e-6)
    assert run.best.samefile(run.model) or run.best.read_bytes() == run.model.read_bytes()  # best.keras is the model
