"""tf_style's step against a plain PyTorch loop's (`pytorch_peer`) on the same CPU, timed interleaved so that the
machine's drift falls on both alike (`compare_with_pytorch`).
"""

import gc
import statistics
import time

import keras

from benchmarks import pytorch_peer
from benchmarks.steps import TfStyleStep
from tf_style.network import convolution
from tf_style.network.device import plan_compute


def compare_with_pytorch(size: int, rounds: int = 10, warmup_steps: int = 3,
                         progress=lambda message: None) -> dict:
    """tf_style's steps and PyTorch's at one size, timed interleaved: one step of each in turn, `rounds` times.

    The machine's speed drifts from minute to minute (shared hardware), so only steps timed in the same rounds
    are compared. Measured: tf_style's plan and PyTorch in the same precision (bfloat16 autocast where the plan
    is bfloat16), and float32 with the plan's convolution kernels and with each way (`convolution.KERNELS`) for
    all but the first convolution.

    Returns:
        {"size", "rounds", "plan", "seconds_per_step": {name: median}, "ratios": {comparison: tf_style / PyTorch},
         "float32_kernel_plans": {"<first>/<rest>": float32 s/step}}.
    """
    plan = plan_compute("auto", "auto")
    bfloat16_plan = plan.dtype_policy == "mixed_bfloat16"
    builders = {f"tf_style plan ({plan.dtype_policy})": lambda: TfStyleStep(size, "auto")}
    float32_plan = plan_compute("float32", "auto")
    kernel_plans = list(dict.fromkeys([float32_plan.conv_kernels] + [
        convolution.KernelPlan(float32_plan.conv_kernels.first, way) for way in convolution.KERNELS]))
    for kernels in kernel_plans:
        builders[_float32_name(kernels)] = lambda kernels=kernels: TfStyleStep(size, "float32", conv_kernels=kernels)
    builders["PyTorch float32 channels_last"] = lambda: pytorch_peer.PyTorchStep(size)
    if bfloat16_plan:
        builders["PyTorch bfloat16 autocast"] = lambda: pytorch_peer.PyTorchStep(size, bfloat16=True)
    steps = {}
    for name, build in builders.items():
        progress(f"{size} px: building {name}")
        steps[name] = build()
        for _ in range(warmup_steps):
            steps[name]()
    durations = {name: [] for name in steps}
    for round_index in range(rounds):
        progress(f"{size} px: interleaved round {round_index + 1} of {rounds}")
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            durations[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in durations.items()}
    float32_name = _float32_name(float32_plan.conv_kernels)
    plan_name = f"tf_style plan ({plan.dtype_policy})"
    ratios = {"tf_style float32 (its plan) / PyTorch float32": medians[float32_name]
              / medians["PyTorch float32 channels_last"]}
    peer_name = "PyTorch bfloat16 autocast" if bfloat16_plan else "PyTorch float32 channels_last"
    ratios[f"tf_style plan / {peer_name}"] = medians[plan_name] / medians[peer_name]
    del steps
    keras.backend.clear_session()
    gc.collect()
    return {"size": size, "rounds": rounds, "plan": plan.reason, "seconds_per_step": medians, "ratios": ratios,
            "float32_kernel_plans": {f"{kernels.first}/{kernels.rest}": medians[_float32_name(kernels)]
                                     for kernels in kernel_plans}}


def _float32_name(kernels) -> str:
    return f"tf_style float32, convolutions {kernels.first}/{kernels.rest}"
