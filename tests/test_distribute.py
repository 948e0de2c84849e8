"""Scale-out: MirroredStrategy over two logical CPUs follows single-device training; chief rules; runtime defaults."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fashion_hier.distribute import chief_output_dir, is_chief, strategy_from_config
from fashion_hier.runtime import cpu_has_bfloat16, resolve_runtime

REPO_ROOT = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter: logical devices must be configured before TensorFlow initialises
# its devices, which the other tests in this process have already done.
TRAJECTORIES = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from fashion_hier.distribute import strategy_from_config
    from fashion_hier.losses import WeightedBinaryCrossentropy, WeightedCategoricalCrossentropy
    from fashion_hier.models import build_head_model

    rng = np.random.default_rng(0)
    features = rng.normal(size=(32, 16)).astype("float32")
    labels = {"category": rng.integers(0, 3, 32).astype("int32"), "subcategory": rng.integers(0, 5, 32).astype("int32"),
              "attributes": (rng.random((32, 4)) < 0.3).astype("float32")}
    result = {}
    for name in ("none", "mirrored"):
        keras.utils.set_random_seed(1)
        strategy = strategy_from_config(name)
        with strategy.scope():
            model = build_head_model(3, 5, 4, feature_dim=16, units=8, dropout=0.0)
            model.compile(optimizer=keras.optimizers.SGD(0.1),
                          loss={"category": WeightedCategoricalCrossentropy([1.0, 2.0, 0.5]),
                                "subcategory": WeightedCategoricalCrossentropy(),
                                "attributes": WeightedBinaryCrossentropy()})
        history = model.fit(features, labels, batch_size=8, epochs=3, shuffle=False, verbose=0)
        result[name] = {"replicas": strategy.num_replicas_in_sync, "loss": history.history["loss"],
                        "kernel": model.get_layer("category").get_weights()[0].tolist()}
    json.dump(result, sys.stdout)
""")


def _run_isolated(code: str) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_follows_single_device_loss_and_weights():
    result = _run_isolated(TRAJECTORIES)
    single, mirrored = result["none"], result["mirrored"]
    assert (single["replicas"], mirrored["replicas"]) == (1, 2)
    # a global batch of 8 split 4 + 4: the same gradient, so the same trajectory up to float rounding
    np.testing.assert_allclose(mirrored["loss"], single["loss"], rtol=1e-4)
    assert single["loss"][-1] < single["loss"][0]  # it did train
    np.testing.assert_allclose(mirrored["kernel"], single["kernel"], rtol=1e-4, atol=1e-6)


def test_unknown_distribution_names_the_known_ones():
    with pytest.raises(ValueError, match="'mirrored'"):
        strategy_from_config("horovod")


@pytest.mark.parametrize("tf_config, chief", [
    ("", True),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}', True),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}', False),
    ('{"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}', False),
    ('{"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', True),
])
def test_chief_is_the_chief_task_or_worker_zero(tf_config, chief):
    assert is_chief(tf_config) is chief


def test_non_chief_writes_to_a_temporary_folder(tmp_path):
    worker = '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}'
    assert chief_output_dir(str(tmp_path), "") == str(tmp_path)
    elsewhere = chief_output_dir(str(tmp_path), worker)
    assert Path(elsewhere).is_dir() and not Path(elsewhere).is_relative_to(tmp_path)


def test_bad_tf_config_is_a_clear_error():
    with pytest.raises(ValueError, match="TF_CONFIG is not valid"):
        is_chief("{not json")


def test_auto_runtime_is_float16_xla_on_gpu_and_bfloat16_only_on_native_cpus(monkeypatch):
    assert resolve_runtime("auto", "auto", gpu=True) == (True, "mixed_float16")
    assert resolve_runtime("auto", "auto", gpu=True, distributed=True) == (False, "mixed_float16")
    monkeypatch.setattr("fashion_hier.runtime.cpu_has_bfloat16", lambda: False)
    assert resolve_runtime("auto", "auto", gpu=False)[1] == "float32"
    monkeypatch.setattr("fashion_hier.runtime.cpu_has_bfloat16", lambda: True)
    assert resolve_runtime("auto", "auto", gpu=False)[1] == "mixed_bfloat16"
    assert resolve_runtime(False, "off", gpu=True) == (False, "float32")
    assert resolve_runtime(False, False, gpu=True) == (False, "float32")  # YAML: mixed_precision: off
    with pytest.raises(ValueError, match="training.mixed_precision"):
        resolve_runtime("auto", "half", gpu=False)


def test_bfloat16_support_is_read_from_cpu_flags():
    assert cpu_has_bfloat16("processor : 0\nflags : fpu sse avx512f avx512_bf16 fma\n")
    assert not cpu_has_bfloat16("processor : 0\nflags : fpu sse avx2 fma\n")
