"""Scale-out with ``tf.distribute``: the strategy named in ``training.distribution``, and who writes files.

- ``"none"``: TensorFlow's default strategy (one device; its ``scope()`` changes nothing).
- ``"mirrored"``: ``MirroredStrategy`` over every GPU of this host (or, without GPUs, over the
  logical CPU devices when there are several — that is how the CI test runs it).
- ``"multi_worker"``: ``MultiWorkerMirroredStrategy`` across the hosts listed in ``TF_CONFIG``.

The batch size in the config is the GLOBAL batch: Keras splits each batch across the replicas.
Only the chief writes the run directory; the other workers write to a throw-away folder (they
must still run the same saving code, since saving a distributed model is a collective step).
See docs/scale_out.md.
"""
from __future__ import annotations

import json
import os
import tempfile

STRATEGIES = ("none", "mirrored", "multi_worker")


def strategy_from_config(name: str):
    """The ``tf.distribute.Strategy`` for ``training.distribution`` = ``name`` (see the module docstring)."""
    import tensorflow as tf

    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy(devices=[device.name for device in devices])
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"training.distribution: {name!r} is not one of {', '.join(map(repr, STRATEGIES))}")


def is_chief(tf_config: str | None = None) -> bool:
    """Whether this process is the chief: the ``chief`` task, or worker 0 of a cluster without one.

    ``tf_config``: the ``TF_CONFIG`` JSON (default: the environment variable); no cluster -> chief.
    """
    text = os.environ.get("TF_CONFIG", "") if tf_config is None else tf_config
    if not text.strip():
        return True
    try:
        config = json.loads(text)
        cluster, task = config.get("cluster", {}), config.get("task", {})
        task_type, index = task.get("type"), int(task.get("index", 0))
    except (ValueError, AttributeError, TypeError) as error:
        raise ValueError(f"TF_CONFIG is not valid: {error}; expected JSON like "
                         '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
                         ) from error
    if task_type is None:
        return True
    if task_type == "chief":
        return True
    return task_type == "worker" and index == 0 and "chief" not in cluster


def chief_output_dir(output_dir: str, tf_config: str | None = None) -> str:
    """``output_dir`` on the chief; a fresh temporary folder on the other workers."""
    if is_chief(tf_config):
        return output_dir
    return tempfile.mkdtemp(prefix="fashion_hier_worker_")
