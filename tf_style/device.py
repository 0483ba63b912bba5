"""What hardware TensorFlow sees, and the compute precision and XLA setting that are fastest on it.

Measured at 512x384 on 2-core CPUs (the README's Performance section has the numbers and the machines): with
bfloat16 units the bfloat16 step without XLA is faster than float32 (1.7x on AVX-512 BF16, more with AMX);
XLA's CPU backend does not use the bfloat16 units and is slower in both precisions. On a GPU, mixed precision
with XLA is the usual winner.
"""

import dataclasses

import tensorflow as tf

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
    """

    device: str
    dtype_policy: str
    jit_compile: bool
    reason: str


def cpu_has_fast_bfloat16(cpuinfo_path: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU advertises AMX-BF16 or AVX-512 BF16 (Linux; elsewhere assume not)."""
    try:
        with open(cpuinfo_path) as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return any(flag in flags for flag in _BFLOAT16_CPU_FLAGS)
    except OSError:
        pass
    return False


def plan_compute(precision: str = "auto", xla: str = "auto") -> ComputePlan:
    """Resolves "auto" precision and XLA for the device TensorFlow sees.

    Args:
        precision: "auto", "float32", "mixed_bfloat16" or "mixed_float16".
        xla: "auto", "true" or "false".
    """
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    device = "GPU" if has_gpu else "CPU"
    if precision != "auto":
        dtype_policy, why = precision, "as asked"
    elif has_gpu:
        dtype_policy, why = "mixed_float16", "GPU found"
    elif cpu_has_fast_bfloat16():
        dtype_policy, why = "mixed_bfloat16", "the CPU has AMX or AVX-512 BF16"
    else:
        dtype_policy, why = "float32", "the CPU has no bfloat16 units"
    jit_compile = has_gpu if xla == "auto" else xla == "true"
    reason = (f"{device}: {dtype_policy} compute ({why}), XLA {'on' if jit_compile else 'off'}"
              f"{' (auto)' if xla == 'auto' else ''}")
    return ComputePlan(device, dtype_policy, jit_compile, reason)
