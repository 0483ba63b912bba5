"""What hardware TensorFlow sees, and the compute precision, XLA setting and convolution input gradient that are
fastest on it.

Measured at 512x384 on 2-core CPUs (the README's Performance section has the numbers and the machines): with
bfloat16 units the bfloat16 step without XLA is faster than float32 (1.7x on AVX-512 BF16, more with AMX);
XLA's CPU backend does not use the bfloat16 units and is slower in both precisions. On a GPU, mixed precision
with XLA is the usual winner. The convolutions' input gradient has two kernels whose speed depends on the CPU
(`tf_style.convolution`): it is measured once per machine, precision and TensorFlow version, and the choice is
kept in a cache file, so that every run on the machine computes the same numbers (a checkpoint resumes to the
same image).
"""

import dataclasses
import hashlib
import json
import os
import platform

import keras
import tensorflow as tf

from tf_style import convolution
from tf_style.errors import WriteError
from tf_style.files import write_atomically

# The forward convolution must be this much faster to be taken: within it the two are the same speed, and the
# native kernel is TensorFlow's own.
FORWARD_CONVOLUTION_MARGIN = 0.9

# /proc/cpuinfo flags that mean oneDNN has fast bfloat16 convolutions and matmuls on this CPU.
_BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclasses.dataclass(frozen=True)
class ComputePlan:
    """How the train step runs.

    Attributes:
        device: "GPU" or "CPU".
        dtype_policy: Keras dtype policy of the network ("float32", "mixed_bfloat16", "mixed_float16").
        jit_compile: whether the train step is compiled with XLA.
        reason: one line saying what was found and chosen, for the user.
        conv_input_gradient: how the convolutions' input gradients are computed (`convolution.INPUT_GRADIENTS`).
    """

    device: str
    dtype_policy: str
    jit_compile: bool
    reason: str
    conv_input_gradient: str


def _cpuinfo(cpuinfo_path: str = "/proc/cpuinfo") -> dict:
    """The first processor's fields in /proc/cpuinfo ({} elsewhere): "model name", "flags", ..."""
    fields = {}
    try:
        with open(cpuinfo_path) as cpuinfo:
            for line in cpuinfo:
                if not line.strip():
                    break
                name, _, value = line.partition(":")
                fields[name.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_has_fast_bfloat16(cpuinfo_path: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU advertises AMX-BF16 or AVX-512 BF16 (Linux; elsewhere assume not)."""
    flags = set(_cpuinfo(cpuinfo_path).get("flags", "").split())
    return any(flag in flags for flag in _BFLOAT16_CPU_FLAGS)


def input_gradient_cache_path() -> str:
    """Where the measured input-gradient choices are kept: $XDG_CACHE_HOME/tf_style (default ~/.cache)."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache_home, "tf_style", "input_gradient.json")


def measured_input_gradient(compute_dtype: str, cache_path: str = None) -> str:
    """The faster way (`convolution.INPUT_GRADIENTS`) to compute the convolutions' input gradient on this CPU.

    Measured on first use (`convolution.time_input_gradients`) and kept in `cache_path`, keyed by the CPU, its
    flags, TensorFlow's version and the dtype. A cache that cannot be read or written is measured again.
    """
    cache_path = cache_path or input_gradient_cache_path()
    cpu = _cpuinfo()
    flags_digest = hashlib.sha256(" ".join(sorted(cpu.get("flags", "").split())).encode()).hexdigest()[:12]
    model = cpu.get("model name") or platform.machine()
    key = f"{model} (flags {flags_digest}), TensorFlow {tf.__version__}, {compute_dtype}"
    try:
        with open(cache_path) as cache_file:
            choices = json.load(cache_file)
    except (OSError, ValueError):
        choices = {}
    if choices.get(key) in convolution.INPUT_GRADIENTS:
        return choices[key]
    seconds = convolution.time_input_gradients(compute_dtype)
    faster = seconds[convolution.FORWARD_CONVOLUTION] < FORWARD_CONVOLUTION_MARGIN * seconds[convolution.NATIVE]
    choices[key] = convolution.FORWARD_CONVOLUTION if faster else convolution.NATIVE
    try:
        text = json.dumps(choices, indent=1, sort_keys=True) + "\n"
        write_atomically(cache_path, lambda file: file.write(text.encode("utf-8")))
    except WriteError:
        pass  # measured again next time
    return choices[key]


def plan_compute(precision: str = "auto", xla: str = "auto") -> ComputePlan:
    """Resolves "auto" precision and XLA for the device TensorFlow sees.

    Args:
        precision: "auto", "float32", "mixed_bfloat16" or "mixed_float16".
        xla: "auto", "true" or "false".
    """
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    device = "GPU" if has_gpu else "CPU"
    fast_bfloat16 = not has_gpu and cpu_has_fast_bfloat16()
    if precision != "auto":
        dtype_policy, why = precision, "as asked"
    elif has_gpu:
        dtype_policy, why = "mixed_float16", "GPU found"
    elif fast_bfloat16:
        dtype_policy, why = "mixed_bfloat16", "the CPU has AMX or AVX-512 BF16"
    else:
        dtype_policy, why = "float32", "the CPU has no bfloat16 units"
    jit_compile = has_gpu if xla == "auto" else xla == "true"
    reason = (f"{device}: {dtype_policy} compute ({why}), XLA {'on' if jit_compile else 'off'}"
              f"{' (auto)' if xla == 'auto' else ''}")
    # On a GPU and under XLA the backward kernels were not measured: TensorFlow's own are kept.
    input_gradient = convolution.NATIVE
    if device == "CPU" and not jit_compile:
        input_gradient = measured_input_gradient(keras.DTypePolicy(dtype_policy).compute_dtype)
    if input_gradient == convolution.FORWARD_CONVOLUTION:
        reason += ", input gradients as forward convolutions (measured faster here)"
    return ComputePlan(device, dtype_policy, jit_compile, reason, input_gradient)
