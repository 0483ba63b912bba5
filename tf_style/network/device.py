"""What hardware TensorFlow sees, and the compute precision, XLA setting and convolution kernels that are fastest
on it.

Measured at 512x384 on 2-core CPUs (docs/performance.md has the numbers and the machines): with
bfloat16 units the bfloat16 step without XLA is faster than float32 (1.7x on AVX-512 BF16, more with AMX);
XLA's CPU backend does not use the bfloat16 units and is slower in both precisions. On a GPU, mixed precision
with XLA is the usual winner. Which of TensorFlow's two convolution kernels runs each convolution's forward
pass and input gradient is measured (`tf_style.network.convolution`) once per machine, precision and TensorFlow
version, and the choice is kept in a cache file, so that every run on the machine computes the same numbers
(a checkpoint resumes to the same image).
"""

import dataclasses
import hashlib
import json
import os
import platform

import keras
import tensorflow as tf

from tf_style.errors import WriteError
from tf_style.files import write_atomically
from tf_style.network import convolution

# Another way of running the convolutions must take less than this fraction of TensorFlow's own way's time to
# be taken: within it the ways are the same speed, and TensorFlow's own is the one it tests.
KERNEL_MARGIN = 0.9
# The shapes the kernel plan is measured on, (B, H, W, C_in, C_out) of a 512x384 image's convolutions: the
# first, and the largest of each block standing for the others. Full-size shapes, because the kernels' order
# changes with the size: with oneDNN held to AVX2, Conv2D's generic kernel is as fast as the other at
# 96x128, 128->128 and 2x slower at 192x256. The probe takes 4 to 16 s, once per machine and precision.
_FIRST_CONVOLUTIONS = ((1, 384, 512, 3, 64),)
_OTHER_CONVOLUTIONS = ((1, 384, 512, 64, 64), (1, 192, 256, 128, 128), (1, 96, 128, 256, 256),
                       (1, 48, 64, 512, 512))

# /proc/cpuinfo flags that mean oneDNN has fast bfloat16 convolutions and matmuls on this CPU.
_BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
# Values of oneDNN's ONEDNN_MAX_CPU_ISA that keep it from the bfloat16 instructions, whatever the CPU has.
_ISA_CAPS_WITHOUT_BFLOAT16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


@dataclasses.dataclass(frozen=True)
class ComputePlan:
    """How the train step runs.

    Attributes:
        device: "GPU" or "CPU".
        dtype_policy: Keras dtype policy of the network ("float32", "mixed_bfloat16", "mixed_float16").
        jit_compile: whether the train step is compiled with XLA.
        reason: one line saying what was found and chosen, for the user.
        conv_kernels: which of TensorFlow's convolution kernels each convolution runs (`convolution.KernelPlan`).
    """

    device: str
    dtype_policy: str
    jit_compile: bool
    reason: str
    conv_kernels: convolution.KernelPlan


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
    """Whether the CPU advertises AMX-BF16 or AVX-512 BF16 (Linux; elsewhere assume not) and oneDNN may use it.

    `ONEDNN_MAX_CPU_ISA=AVX2` (or another ISA below AVX512_CORE_BF16) holds oneDNN to instructions without
    bfloat16: the CPU then computes as an AVX2-only one does.
    """
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in _ISA_CAPS_WITHOUT_BFLOAT16:
        return False
    flags = set(_cpuinfo(cpuinfo_path).get("flags", "").split())
    return any(flag in flags for flag in _BFLOAT16_CPU_FLAGS)


def kernel_cache_path() -> str:
    """Where the measured convolution kernel plans are kept: $XDG_CACHE_HOME/tf_style (default ~/.cache)."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache_home, "tf_style", "convolution_kernels.json")


def measured_kernel_plan(compute_dtype: str, cache_path: str = None) -> convolution.KernelPlan:
    """The fastest ways (`convolution.KERNELS`) to run VGG's convolutions on this CPU in `compute_dtype`.

    Measured on first use (`convolution.time_kernels`, on the shapes of a 512x384 image's convolutions)
    and kept in `cache_path`, keyed by the CPU, its flags, TensorFlow's version and the dtype. A cache that
    cannot be read or written is measured again.
    """
    cache_path = cache_path or kernel_cache_path()
    cpu = _cpuinfo()
    flags_digest = hashlib.sha256(" ".join(sorted(cpu.get("flags", "").split())).encode()).hexdigest()[:12]
    model = cpu.get("model name") or platform.machine()
    key = f"{model} (flags {flags_digest}), TensorFlow {tf.__version__}, {compute_dtype}"
    if os.environ.get("ONEDNN_MAX_CPU_ISA"):  # oneDNN picks its kernels among fewer
        key += f", ONEDNN_MAX_CPU_ISA={os.environ['ONEDNN_MAX_CPU_ISA']}"
    try:
        with open(cache_path) as cache_file:
            plans = json.load(cache_file)
    except (OSError, ValueError):
        plans = {}
    kept = plans.get(key)
    if isinstance(kept, dict) and {kept.get("first"), kept.get("rest")} <= set(convolution.KERNELS):
        return convolution.KernelPlan(kept["first"], kept["rest"])
    # The first convolution's runs take 20 to 50 ms, so it is timed more often.
    plan = convolution.KernelPlan(first=_fastest(convolution.time_kernels(compute_dtype, _FIRST_CONVOLUTIONS, 20)),
                                  rest=_fastest(convolution.time_kernels(compute_dtype, _OTHER_CONVOLUTIONS)))
    plans[key] = dataclasses.asdict(plan)
    try:
        text = json.dumps(plans, indent=1, sort_keys=True) + "\n"
        write_atomically(cache_path, lambda file: file.write(text.encode("utf-8")))
    except WriteError:
        pass  # measured again next time
    return plan


def _fastest(seconds: dict) -> str:
    """The fastest way of `seconds` ({way: seconds}); TensorFlow's own unless another beats it by the margin."""
    fastest = min(seconds, key=seconds.get)
    return fastest if seconds[fastest] < KERNEL_MARGIN * seconds[convolution.NATIVE] else convolution.NATIVE


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
    # On a GPU and under XLA the kernels were not measured: TensorFlow's own way is kept.
    kernels = convolution.KernelPlan()
    if device == "CPU" and not jit_compile:
        kernels = measured_kernel_plan(keras.DTypePolicy(dtype_policy).compute_dtype)
    if kernels.describe():
        reason += f", {kernels.describe()} (measured faster here)"
    return ComputePlan(device, dtype_policy, jit_compile, reason, kernels)
