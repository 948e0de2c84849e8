"""What every trainer compiles a model with: the config's per-level losses, its optimiser at a stage's rate, metrics.

The full image model (``fashion_hier.train``), the head on cached features and the partial fine-tune
(``fashion_hier.features``, ``fashion_hier.finetune``) compile here, so the three fit the same losses with
the same optimiser; a loaded task's default ``compile()`` rebuilds the same (``HierarchicalClassifier``).
"""
from __future__ import annotations

from fashion_hier.config import TrainConfig
from fashion_hier.labels import LabelSpace
from fashion_hier.losses import losses_from_config
from fashion_hier.optimizers import build_optimizer
from fashion_hier.task import default_metrics


def weighted_losses(config: TrainConfig, label_space: LabelSpace, train_labels: dict) -> dict:
    """The per-level losses of ``config.loss`` (class weighting from the training split's counts)."""
    return losses_from_config(config.loss, label_space, train_labels)


def compile_model(model, config: TrainConfig, losses: dict, label_space: LabelSpace, learning_rate: float,
                  jit_compile: bool, *, steps_per_epoch: int, epochs: int, metrics: dict | None = None) -> None:
    """``config.optimizer`` at ``learning_rate`` for this stage, the given losses with ``config.loss.level_weights``,
    and ``metrics`` (default: the task's training metrics, ``default_metrics``)."""
    optimizer = build_optimizer(config.optimizer, steps_per_epoch=steps_per_epoch, epochs=epochs,
                                learning_rate=learning_rate)
    model.compile(optimizer=optimizer, loss=losses, loss_weights=config.loss.level_weights,
                  metrics=default_metrics(label_space) if metrics is None else metrics, jit_compile=jit_compile,
                  run_eagerly=config.training.run_eagerly)
