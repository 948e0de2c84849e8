"""The optimiser a config asks for: Adam/AdamW, constant rate or warm-up + cosine, by hand."""
import math
from types import SimpleNamespace

import keras
import pytest

from fashion_hier.optimizers import build_optimizer, learning_rate_schedule


def _config(**changes):
    values = dict(name="adam", learning_rate=0.01, weight_decay=0.004, schedule="constant", warmup_epochs=0)
    return SimpleNamespace(**{**values, **changes})


def _rate(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_constant_schedule_is_the_learning_rate():
    assert learning_rate_schedule(0.01) == 0.01


def test_warmup_then_cosine_by_hand():
    schedule = learning_rate_schedule(0.01, schedule="cosine", steps_per_epoch=10, epochs=5, warmup_epochs=1)
    assert _rate(schedule, 0) == pytest.approx(0.0, abs=1e-9)
    assert _rate(schedule, 5) == pytest.approx(0.005, rel=1e-4)           # half-way up the linear warm-up
    assert _rate(schedule, 10) == pytest.approx(0.01, rel=1e-4)           # the peak
    decay_step = 20                                                       # 20 of the 40 cosine steps
    expected = 0.01 * 0.5 * (1 + math.cos(math.pi * decay_step / 40))
    assert _rate(schedule, 10 + decay_step) == pytest.approx(expected, rel=1e-4)
    assert _rate(schedule, 50) == pytest.approx(0.0, abs=1e-7)


def test_build_optimizer_adamw_carries_weight_decay_and_adam_none():
    adamw = build_optimizer(_config(name="adamw", weight_decay=0.05), steps_per_epoch=3, epochs=2)
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == pytest.approx(0.05)
    adam = build_optimizer(_config(), steps_per_epoch=3, epochs=2, learning_rate=0.5)
    assert type(adam) is keras.optimizers.Adam
    assert float(keras.ops.convert_to_numpy(adam.learning_rate)) == pytest.approx(0.5)


@pytest.mark.parametrize("changes, message", [
    ({"name": "sgd"}, "unknown optimizer.name 'sgd'"),
    ({"schedule": "step"}, "unknown optimizer.schedule 'step'"),
    ({"schedule": "cosine", "warmup_epochs": 3}, "warmup_epochs must lie in"),
])
def test_bad_optimizer_settings_are_clear_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        build_optimizer(_config(**changes), steps_per_epoch=2, epochs=3)
