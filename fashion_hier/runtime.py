"""The fastest numeric settings per device: XLA (``jit_compile``) and the mixed-precision policy.

``"auto"`` in ``training.jit_compile`` / ``training.mixed_precision`` is resolved here, from what
``benchmarks/bench_model.py`` measured (experiments/results/benchmarks/cpu.md):

- CPU, XLA: off. ResNet-50 + message-passing head at 224 px, batch 16, trained at 3.36 images/s
  without XLA and at 1.66 with it (inference: 17.6 vs 8.1 images/s), on 2 cores with TF 2.21.
- CPU, precision: ``mixed_bfloat16`` when the CPU has native bfloat16 (AVX512_BF16 / AMX), as the
  machine we measured does: 7.42 vs 3.67 training images/s at 224 px on a quiet machine, and
  1.2-1.55x in 3 of 4 settings under load. Otherwise ``float32``: emulated bfloat16 does not pay.
- GPU: ``mixed_float16`` + XLA (tensor cores; XLA fuses the element-wise work between
  convolutions). This was not measured here, because no GPU was available.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

PRECISION_POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")

CPU_JIT_COMPILE = False  # XLA halved CPU throughput in every measured setting
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of native bfloat16 arithmetic


def has_gpu() -> bool:
    """Whether TensorFlow sees a GPU."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def cpu_has_bfloat16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU does bfloat16 arithmetic natively (AVX512-BF16 or AMX), from /proc/cpuinfo's flags.

    Without it oneDNN emulates bfloat16 and ``mixed_bfloat16`` would not pay; off Linux we do not guess.
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as handle:
                cpuinfo = handle.read()
        except OSError:
            return False
    flags = {flag for line in cpuinfo.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    return any(flag in flags for flag in BFLOAT16_CPU_FLAGS)


def resolve_runtime(jit_compile: bool | str = "auto", mixed_precision: str | bool = "auto", *,
                    distributed: bool = False, gpu: bool | None = None) -> tuple[bool, str]:
    """``(jit_compile, policy name)`` with ``"auto"`` replaced by the faster choice for the device.

    ``mixed_precision`` "off" (or false) means "float32". ``distributed``: under ``tf.distribute`` "auto" means
    no XLA, as in Keras's own "auto". ``gpu``: override device detection (tests).
    """
    if jit_compile not in (True, False, "auto"):
        raise ValueError(f"training.jit_compile: expected true, false or 'auto', got {jit_compile!r}")
    if mixed_precision is False:  # YAML reads an unquoted ``off`` as false
        mixed_precision = "off"
    if mixed_precision not in ("auto", "off", *PRECISION_POLICIES):
        raise ValueError(f"training.mixed_precision: expected 'auto', 'off' or one of {', '.join(PRECISION_POLICIES)}, "
                         f"got {mixed_precision!r}")
    if "auto" in (jit_compile, mixed_precision) and gpu is None:
        gpu = has_gpu()
    if jit_compile == "auto":
        jit_compile = False if distributed else True if gpu else CPU_JIT_COMPILE
    if mixed_precision == "auto":
        mixed_precision = "mixed_float16" if gpu else "mixed_bfloat16" if cpu_has_bfloat16() else "float32"
    return jit_compile, "float32" if mixed_precision == "off" else mixed_precision


@contextlib.contextmanager
def precision_policy(name: str) -> Iterator[None]:
    """Build layers under the Keras dtype policy ``name`` and restore the previous policy afterwards."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
