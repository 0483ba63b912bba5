"""Timing a step: the median of its timed steps after untimed warm-up ones (`time_steps`), and a measured step
rated against the machine's peak (`measure_step`).
"""

import gc
import statistics
import time
from typing import Callable, Optional

import keras


def time_steps(step: Callable[[], object], num_steps: int, warmup_steps: int = 3,
               budget_seconds: Optional[float] = None) -> dict:
    """Runs `step` (which must wait for its result) `warmup_steps` times untimed, then times it.

    Args:
        step: one step; it must return only when the work is done (e.g. read a value back).
        num_steps: how many steps to time.
        warmup_steps: untimed steps first (tracing, oneDNN primitive caches).
        budget_seconds: if set, time fewer steps (at least 2) when `num_steps` of the last warm-up step's
            length would exceed it.

    Returns:
        {"seconds_per_step": median, "timed_steps": how many were timed, "step_seconds": each one,
         "cores_used": CPU seconds of this process per wall second while timing}.
    """
    last_warmup_seconds = 0.0
    for _ in range(warmup_steps):
        start = time.perf_counter()
        step()
        last_warmup_seconds = time.perf_counter() - start
    if budget_seconds is not None and last_warmup_seconds > 0:
        num_steps = max(min(2, num_steps), min(num_steps, int(budget_seconds / last_warmup_seconds)))
    durations = []
    cpu_start = time.process_time()
    for _ in range(num_steps):
        start = time.perf_counter()
        step()
        durations.append(time.perf_counter() - start)
    # Below the number of cores, other work on the machine took some of them (or the step does not use them).
    cores_used = (time.process_time() - cpu_start) / sum(durations) if sum(durations) > 0 else 0.0
    return {"seconds_per_step": statistics.median(durations), "timed_steps": num_steps,
            "step_seconds": durations, "cores_used": cores_used}


def measure_step(name: str, build: Callable[[], object], dtype: str, peaks: dict, num_steps: int,
                 warmup_steps: int, budget_seconds: Optional[float]) -> dict:
    """Builds a step (TfStyleStep, TutorialStep or NaiveEagerStep), times it, and rates it against the peak."""
    step = build()
    timing = time_steps(step, num_steps, warmup_steps, budget_seconds)
    flops = step.flops()
    batch_size = getattr(step, "batch_size", 1)
    achieved_gflops = flops / timing["seconds_per_step"] / 1e9
    # A traced step holds its model in a reference cycle: free it before the next, possibly larger, one.
    del step
    keras.backend.clear_session()
    gc.collect()
    return {"name": name, "dtype": dtype, **timing, "batch_size": batch_size,
            "seconds_per_image_step": timing["seconds_per_step"] / batch_size, "gflop_per_step": flops / 1e9,
            "achieved_gflops": achieved_gflops, "fraction_of_peak": achieved_gflops / peaks[dtype]["peak_gflops"]}
