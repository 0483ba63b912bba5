"""Benchmark of the train step (how close to the machine's limit a step runs): `python -m benchmarks.bench`,
run from the repository's root. This module holds the flags and `run_benchmark`; each measurement lives in its
own module.

In one run it measures, at each size (long side, 4:3 images):
- seconds per step of tf_style's own train step, built as `stylize()` builds it, with the chosen compute plan
  and with float32 (`steps.TfStyleStep`, timed by `timing`);
- the same with two region masks (`--content_masks`: the top third and the rest, one style each), for what
  guided Gram matrices cost;
- the same for two baselines: the TensorFlow tutorial recipe ("Neural style transfer": VGG19, float32,
  `tf.function` without XLA, Adam(0.02) on a [0, 1] image; `steps.TutorialStep`) and a naive eager loop that
  recomputes the targets every step with tf_style's extractor (`steps.NaiveEagerStep`);
- the analytical FLOPs of a step (`steps`) and the machine's measured matmul and convolution GFLOP/s
  (`peaks`), so that each step time is also a fraction of the peak of its precision;
- the peak resident memory of tf_style's step, each size in a fresh child process (`peak_rss`);
- the wall time of a preset (`flags/quality.cfg`) at 512 px through the CLI, start-up included (`cli_runs`),
  against the tutorial recipe's 1000 steps, its step timed just before and just after that run;
- with PyTorch installed (`pip install -e '.[bench]'`), tf_style's step against a plain PyTorch loop's on the same
  CPU, timed interleaved (`pytorch_comparison`), and PyTorch's convolution in the peak.
It prints a table and writes the numbers as JSON (`report`). `--served` measures instead what one request to the
stylizer SavedModel costs, against the same run through the CLI (`served`); `--throughput`, images per minute of
the Beam pipeline against the batched CLI (`throughput`).
"""

import importlib.util
import os
import sys
from typing import Optional, Sequence

from tf_style.cli.startup import native_stderr_silenced
from tf_style.errors import UsageError

with native_stderr_silenced():
    import keras
    import tensorflow as tf

    from benchmarks import pytorch_peer
    from benchmarks.cli_runs import time_preset
    from benchmarks.peak_rss import MEMORY_METHOD, measure_memory
    from benchmarks.peaks import measure_peaks, peak_dtype
    from benchmarks.pytorch_comparison import compare_with_pytorch
    from benchmarks.report import format_report, processor_name, write_json
    from benchmarks.served import format_served, measure_served
    from benchmarks.steps import (FLOP_COUNTING, NaiveEagerStep, TfStyleStep, TutorialStep, parse_sizes,
                                  timed_against_tutorial)
    from benchmarks.throughput import format_throughput, measure_throughput
    from benchmarks.timing import measure_step
    from tf_style.cli.flags import FlagSpec
    from tf_style.cli.support import Program, require_no_arguments
    from tf_style.network.device import cpu_has_fast_bfloat16, plan_compute

NAME = "benchmarks.bench"
REGIONS_NAME = "tf_style plan, two regions (masks)"


def run_benchmark(sizes: Sequence[int], num_steps: int = 10, warmup_steps: int = 3,
                  budget_seconds: Optional[float] = 45.0, naive_max_size: int = 512,
                  preset: Optional[str] = "flags/quality.cfg", preset_size: int = 512,
                  preset_extra_args: Sequence[str] = (), measure_memory_too: bool = True, batch_size: int = 4,
                  batch_max_size: int = 512, peer_size: Optional[int] = 512, peer_rounds: int = 10,
                  progress=lambda message: print(message, file=sys.stderr, flush=True)) -> dict:
    """Runs every measurement; returns the results as a JSON-ready dict.

    Args:
        sizes: long sides to measure, in pixels (4:3 images).
        num_steps: timed steps per measurement (the median is reported).
        warmup_steps: untimed steps before each measurement.
        budget_seconds: time fewer steps (at least 2) where `num_steps` would take longer than this.
        naive_max_size: skip the naive eager baseline above this size (it is several times slower).
        preset: a flagfile to time through the CLI at `preset_size`; None skips it.
        preset_extra_args: more CLI flags for the preset run (tests use them to make it short).
        measure_memory_too: measure the peak RSS of each size in a child process.
        batch_size: the batch of the batched step, measured beside one image per step.
        batch_max_size: skip the batched step above this size (batching pays where steps are small).
        peer_size: the size of the interleaved comparison with PyTorch (`compare_with_pytorch`); None skips it.
        peer_rounds: its rounds.
        progress: receives one line per measurement as it starts.
    """
    plan = plan_compute("auto", "auto")
    float32_plan = plan_compute("float32", "auto")
    progress(f"compute plan: {plan.reason}")
    # Without bfloat16 units a bfloat16 peak means nothing, and with oneDNN held to AVX2 TensorFlow's bfloat16
    # matmul crashes (a segmentation fault, TensorFlow 2.21).
    bfloat16_peak = ["bfloat16"] if cpu_has_fast_bfloat16() else []
    peak_dtypes = list(dict.fromkeys(["float32", *bfloat16_peak, peak_dtype(plan.dtype_policy)]))
    progress(f"measuring peak GFLOP/s ({', '.join(peak_dtypes)})")
    peaks = measure_peaks(peak_dtypes, num_steps, warmup_steps)
    results = {
        "machine": {"processor": processor_name(), "cpu_count": os.cpu_count(),
                    "tensorflow": tf.__version__, "keras": keras.__version__,
                    # Other work on the machine slows every measurement; the load says how much there was.
                    "load_average_at_start": os.getloadavg()[0]},
        "plan": {"device": plan.device, "dtype_policy": plan.dtype_policy, "jit_compile": plan.jit_compile,
                 "reason": plan.reason},
        "settings": {"sizes": list(sizes), "num_steps": num_steps, "warmup_steps": warmup_steps,
                     "batch_size": batch_size, "batch_max_size": batch_max_size, "budget_seconds": budget_seconds,
                     "naive_max_size": naive_max_size},
        "peaks": peaks, "flop_counting": FLOP_COUNTING, "measurements": [], "skipped": [],
    }
    batched_name = f"tf_style plan, batch of {batch_size} images"
    configurations = [
        (f"tf_style plan ({plan.dtype_policy}, XLA {'on' if plan.jit_compile else 'off'})",
         peak_dtype(plan.dtype_policy), lambda size: TfStyleStep(size, "auto")),
        (batched_name, peak_dtype(plan.dtype_policy), lambda size: TfStyleStep(size, "auto", batch_size)),
        (REGIONS_NAME, peak_dtype(plan.dtype_policy), lambda size: TfStyleStep(size, "auto", two_regions=True)),
        ("tf_style float32", "float32", lambda size: TfStyleStep(size, "float32")),
        ("tutorial recipe (VGG19, float32)", "float32", TutorialStep),
        ("naive eager (float32, targets every step)", "float32", NaiveEagerStep),
    ]
    if (plan.dtype_policy, plan.jit_compile) == (float32_plan.dtype_policy, float32_plan.jit_compile):
        configurations = [configuration for configuration in configurations
                          if configuration[0] != "tf_style float32"]
        results["skipped"].append("tf_style float32: the plan is already float32 without XLA")
    for size in sizes:
        for name, dtype, build in configurations:
            if build is NaiveEagerStep and size > naive_max_size:
                results["skipped"].append(f"{name} at {size} px (above --naive_max_size={naive_max_size})")
                continue
            if name == batched_name and size > batch_max_size:
                results["skipped"].append(f"{name} at {size} px (above --batch_max_size={batch_max_size})")
                continue
            progress(f"{size} px: {name}")
            measurement = measure_step(name, lambda: build(size), dtype, peaks, num_steps, warmup_steps,
                                       budget_seconds)
            results["measurements"].append({"size": size, **measurement})
    results["pytorch"] = None
    if peer_size is not None and not pytorch_peer.available():
        results["skipped"].append("the comparison with PyTorch: torch is not installed (pip install -e '.[bench]')")
    elif peer_size is not None:
        results["pytorch"] = compare_with_pytorch(peer_size, peer_rounds, warmup_steps, progress)
    results["memory"] = {"method": MEMORY_METHOD, "sizes": []}
    if measure_memory_too:
        for size in sizes:
            progress(f"{size} px: peak memory in a child process")
            results["memory"]["sizes"].append(measure_memory(size))
    results["preset"] = None
    if preset is not None:
        progress(f"timing {preset} at {preset_size} px through the CLI")
        results["preset"] = timed_against_tutorial(lambda: time_preset(preset, preset_size, preset_extra_args),
                                                   preset_size, num_steps, warmup_steps, progress)
    results["machine"]["load_average_at_end"] = os.getloadavg()[0]
    return results


FLAGS = (
    FlagSpec("sizes", "list", ["128", "256", "512", "1024"], "Long sides to measure, in pixels (4:3)."),
    FlagSpec("steps", "integer", 10, "Timed steps per measurement; the median is reported."),
    FlagSpec("warmup_steps", "integer", 3, "Untimed steps before each measurement."),
    FlagSpec("budget_seconds", "float", 45.0,
             "Time fewer steps (at least 2) where --steps would take longer than this."),
    FlagSpec("naive_max_size", "integer", 512, "Skip the naive eager baseline above this size (it is slow)."),
    FlagSpec("json", "string", "saved_outputs/bench.json", "Where to write the results."),
    FlagSpec("skip_preset", "boolean", False, "Do not time the preset through the CLI."),
    FlagSpec("preset", "string", "flags/quality.cfg", "The preset (flagfile) to time at 512 px."),
    FlagSpec("skip_memory", "boolean", False, "Do not measure peak memory per size."),
    FlagSpec("batch_size", "integer", 4, "Images per step of the batched measurement."),
    FlagSpec("batch_max_size", "integer", 512, "Skip the batched measurement above this size."),
    FlagSpec("peer_size", "integer", 512, "Size of the interleaved comparison with PyTorch (needs torch: pip "
             "install -e '.[bench]'); 0 skips it."),
    FlagSpec("peer_rounds", "integer", 10, "Rounds of the comparison with PyTorch; the medians are reported."),
    FlagSpec("throughput", "boolean", False, "Instead of the step benchmark: images per minute of the Beam "
             "pipeline (DirectRunner, worker processes) against the batched CLI, on the same photos (needs "
             "apache-beam)."),
    FlagSpec("throughput_images", "integer", 24, "--throughput: photos per command."),
    FlagSpec("throughput_size", "integer", 256, "--throughput: their long side (4:3)."),
    FlagSpec("throughput_workers", "integer", 2, "--throughput: the DirectRunner's worker processes."),
    FlagSpec("throughput_flags", "list", ["--flagfile=flags/preview.cfg"], "--throughput: style flags for both "
             "commands, comma-separated (--size and --batch_size are set)."),
    FlagSpec("throughput_json", "string", "saved_outputs/bench_beam.json", "--throughput: where to write the "
             "results."),
    FlagSpec("served", "boolean", False, "Instead of the step benchmark: one stylization of --preset served from "
             "the stylizer SavedModel (reloaded in a process without tf_style; the first request and the next) "
             "against the same run through the CLI, in float32."),
    FlagSpec("served_sizes", "list", ["256", "512"], "--served: the results' long sides."),
    FlagSpec("served_json", "string", "saved_outputs/bench_served.json", "--served: where to write the results."),
)


def main(argv, flag_values) -> int:
    require_no_arguments(argv)
    if flag_values.throughput:
        return main_throughput(flag_values)
    if flag_values.served:
        return main_served(flag_values)
    sizes = parse_sizes(flag_values.sizes)
    if flag_values.steps < 1:
        raise UsageError(f"--steps must be a positive integer, got {flag_values.steps}")
    preset = None if flag_values.skip_preset else flag_values.preset
    if preset is not None and not os.path.isfile(preset):
        raise UsageError(f"--preset: no file at {preset!r} (paths are relative to the working directory); "
                         "run from the repository root or pass --skip_preset")
    # Checked now, not after a quarter of an hour of measuring.
    json_directory = os.path.dirname(os.path.abspath(flag_values.json))
    if not os.access(json_directory if os.path.isdir(json_directory) else os.path.dirname(json_directory),
                     os.W_OK):
        raise UsageError(f"--json: cannot write in {json_directory}; choose a writable path")
    results = run_benchmark(sizes, flag_values.steps, flag_values.warmup_steps,
                            flag_values.budget_seconds, flag_values.naive_max_size, preset,
                            measure_memory_too=not flag_values.skip_memory,
                            batch_size=flag_values.batch_size,
                            batch_max_size=flag_values.batch_max_size, peer_size=flag_values.peer_size or None,
                            peer_rounds=flag_values.peer_rounds)
    write_json(flag_values.json, results)
    print(format_report(results))
    print(f"\nwrote {flag_values.json}")
    return 0


def main_throughput(flag_values) -> int:
    """--throughput: the Beam pipeline against the batched CLI."""
    if importlib.util.find_spec("apache_beam") is None:  # the children import it, not this process
        raise UsageError("--throughput needs Apache Beam: pip install 'tf_style[beam]'")
    json_path = flag_values.throughput_json
    results = measure_throughput(flag_values.throughput_images, flag_values.throughput_size,
                                 flag_values.throughput_flags, flag_values.throughput_workers,
                                 flag_values.batch_size)
    write_json(json_path, results)
    print(format_throughput(results))
    print(f"\nwrote {json_path}")
    return 0


def main_served(flag_values) -> int:
    """--served: a request to the stylizer SavedModel against the CLI."""
    sizes = parse_sizes(flag_values.served_sizes)
    if not os.path.isfile(flag_values.preset):
        raise UsageError(f"--preset: no file at {flag_values.preset!r} (paths are relative to the working "
                         "directory); run from the repository root")
    results = measure_served(sizes, flag_values.preset)
    write_json(flag_values.served_json, results)
    print(format_served(results))
    print(f"\nwrote {flag_values.served_json}")
    return 0


PROGRAM = Program(NAME, FLAGS, main)


def run() -> None:
    PROGRAM.run()


if __name__ == "__main__":
    run()
