"""The optimiser a config asks for: Adam or AdamW, at a constant rate or on a warm-up + cosine schedule."""
from __future__ import annotations

import keras

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine")


def learning_rate_schedule(learning_rate: float, *, schedule: str = "constant", steps_per_epoch: int = 1,
                           epochs: int = 1, warmup_epochs: int = 0):
    """``learning_rate`` itself, or a linear warm-up from 0 over ``warmup_epochs`` then a cosine decay to 0.

    The cosine covers the epochs after the warm-up (``keras.optimizers.schedules.CosineDecay`` with
    ``warmup_target``), so the rate reaches 0 at the end of the ``epochs`` budget.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown optimizer.schedule {schedule!r}; expected one of {', '.join(SCHEDULES)}")
    if not 0 <= warmup_epochs < max(epochs, 1):
        raise ValueError(f"optimizer.warmup_epochs must lie in [0, training.epochs={epochs}), got {warmup_epochs}")
    if schedule == "constant":
        return float(learning_rate)
    warmup_steps = int(warmup_epochs * steps_per_epoch)
    decay_steps = max(int(epochs * steps_per_epoch) - warmup_steps, 1)
    if warmup_steps == 0:
        return keras.optimizers.schedules.CosineDecay(float(learning_rate), decay_steps)
    return keras.optimizers.schedules.CosineDecay(0.0, decay_steps, warmup_target=float(learning_rate),
                                                  warmup_steps=warmup_steps)


def build_optimizer(optimizer_config, *, steps_per_epoch: int, epochs: int,
                    learning_rate: float | None = None) -> keras.optimizers.Optimizer:
    """The ``OptimizerConfig``'s optimiser for a fit of ``epochs`` x ``steps_per_epoch`` steps.

    ``learning_rate`` overrides the config's (a second training stage at its own rate).
    """
    name = optimizer_config.name
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer.name {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    rate = learning_rate_schedule(optimizer_config.learning_rate if learning_rate is None else learning_rate,
                                  schedule=optimizer_config.schedule, steps_per_epoch=steps_per_epoch,
                                  epochs=epochs, warmup_epochs=optimizer_config.warmup_epochs)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=rate, weight_decay=optimizer_config.weight_decay)
    return keras.optimizers.Adam(learning_rate=rate)
