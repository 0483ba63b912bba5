"""What exactness costs (tiles that give the untiled gradient): `python -m benchmarks.tiling`, run from the
repository's root.

At each size (long side, 4:3, the bundled pair) it measures tf_style's train step with the chosen compute plan
untiled and in tiles of --tile_size (`tf_style.tiling.tiles`): seconds per step and peak resident memory, each in a
fresh child process, so that one measurement's memory is not another's. Untiled is measured where its memory
estimate fits in the memory available; above that, tiled only. The tiled step costs more per step than the
untiled one (the margins' pixels, and a second forward pass of each tile); the ratio is that cost.
"""

import concurrent.futures
import multiprocessing
import os
from typing import Sequence

from tf_style.cli.startup import native_stderr_silenced
from tf_style.errors import UsageError

with native_stderr_silenced():
    from benchmarks.peak_rss import peak_rss_mb
    from benchmarks.report import processor_name, write_json
    from benchmarks.steps import TfStyleStep, parse_sizes, sample_images
    from benchmarks.timing import time_steps
    from tf_style import memory
    from tf_style.cli.flags import FlagSpec
    from tf_style.cli.support import Program, require_no_arguments
    from tf_style.config import StyleConfig

NAME = "benchmarks.tiling"

METHOD = ("each configuration in a fresh child process (multiprocessing, spawn): the step built as stylize() "
          "builds it with the chosen compute plan, the median of the timed steps after the warm-up steps, and the "
          "process's peak RSS (VmHWM) at the end, TensorFlow and the images included")


def _measure_in_this_process(size: int, tile_size: int, precision: str, num_steps: int, warmup_steps: int) -> dict:
    sample_images(size)
    start_mb = peak_rss_mb()
    step = TfStyleStep(size, precision, tile_size=tile_size)
    timing = time_steps(step, num_steps, warmup_steps)
    return {"size": size, "tile_size": tile_size, "pixels": step.height * step.width,
            "grid": step.grid.describe() if step.grid is not None else None, "plan": step.plan.dtype_policy,
            **timing, "start_rss_mb": start_mb, "peak_rss_mb": peak_rss_mb()}


def measure(size: int, tile_size: int, precision: str, num_steps: int, warmup_steps: int) -> dict:
    """One configuration (`tile_size` 0: untiled) in a fresh child process: its timing and peak memory."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as executor:
        return executor.submit(_measure_in_this_process, size, tile_size, precision, num_steps, warmup_steps).result()


def untiled_fits(size: int, available: int) -> bool:
    """Whether the untiled step at `size` (4:3, the style as large) fits in `available` bytes, by the estimate."""
    config = StyleConfig(size=size)
    height, width = round(size * 3 / 4), size
    return memory.estimate_peak_bytes(height, width, config.network, config.content_layers + config.style_layers,
                                      "float32", [(height, width)]) <= available


def run_tiling_benchmark(sizes: Sequence[int], tile_size: int, precision: str = "auto", num_steps: int = 3,
                         warmup_steps: int = 1, available: int = None, progress=print) -> dict:
    """Every size untiled (where it fits) and tiled; returns the results as a JSON-ready dict.

    `precision`: "auto" (the compute plan `stylize()` chooses on the machine) or one `--precision` value."""
    available = memory.available_bytes() if available is None else available
    results = {"machine": {"processor": processor_name(), "cpu_count": os.cpu_count(),
                           "load_average_at_start": os.getloadavg()[0]},
               "settings": {"sizes": list(sizes), "tile_size": tile_size, "precision": precision,
                            "num_steps": num_steps, "warmup_steps": warmup_steps, "available_bytes": available},
               "method": METHOD, "sizes": []}
    for size in sizes:
        entry = {"size": size, "untiled": None}
        if available is None or untiled_fits(size, available):
            progress(f"{size} px: untiled")
            entry["untiled"] = measure(size, 0, precision, num_steps, warmup_steps)
        progress(f"{size} px: in tiles of {tile_size} px")
        entry["tiled"] = measure(size, tile_size, precision, num_steps, warmup_steps)
        if entry["untiled"] is not None:
            entry["tiled_over_untiled_seconds"] = (entry["tiled"]["seconds_per_step"]
                                                   / entry["untiled"]["seconds_per_step"])
        results["sizes"].append(entry)
    results["machine"]["load_average_at_end"] = os.getloadavg()[0]
    return results


def format_report(results: dict) -> str:
    machine = results["machine"]
    lines = [f"machine: {machine['processor']}, {machine['cpu_count']} cores; load average "
             f"{machine['load_average_at_start']:.2f} at the start, {machine['load_average_at_end']:.2f} at the end",
             f"method: {results['method']}", "",
             f"{'size':>9}  {'configuration':<40} {'steps':>5} {'s/step':>8} {'peak MB':>8} {'tiled/untiled':>13}"]
    for entry in results["sizes"]:
        height, width = round(entry["size"] * 3 / 4), entry["size"]
        for name in ("untiled", "tiled"):
            measured = entry[name]
            if measured is None:
                lines.append(f"{f'{width}x{height}':>9}  {'untiled: does not fit (estimate)':<40}")
                continue
            ratio = f"{entry['tiled_over_untiled_seconds']:.2f}x" if name == "tiled" and entry["untiled"] else ""
            configuration = f"{measured['plan']}, " + (measured["grid"] or "untiled")
            lines.append(f"{f'{width}x{height}':>9}  {configuration:<40} {measured['timed_steps']:>5} "
                         f"{measured['seconds_per_step']:>8.2f} {measured['peak_rss_mb']:>8.0f} {ratio:>13}")
    return "\n".join(lines)


FLAGS = (
    FlagSpec("sizes", "list", ["1024", "2048", "4096"], "Long sides to measure, in pixels (4:3)."),
    FlagSpec("tile_size", "integer", 512, "The tiles' size (a multiple of 16, at least 64)."),
    FlagSpec("precision", "string", "auto", "The compute plan's precision: auto (the machine's plan), or a "
             "--precision value such as float32 (the plan of a CPU without bfloat16)."),
    FlagSpec("steps", "integer", 3, "Timed steps per measurement; the median is reported."),
    FlagSpec("warmup_steps", "integer", 1, "Untimed steps before each measurement (tracing)."),
    FlagSpec("json", "string", "saved_outputs/bench_tiled.json", "Where to write the results."),
)


def main(argv, flag_values) -> int:
    require_no_arguments(argv)
    sizes = parse_sizes(flag_values.sizes)
    # Refuses a tile size off the grid or an unknown precision, before any work.
    StyleConfig(tile_size=flag_values.tile_size, precision=flag_values.precision)
    if flag_values.steps < 1:
        raise UsageError(f"--steps must be a positive integer, got {flag_values.steps}")
    results = run_tiling_benchmark(sizes, flag_values.tile_size, flag_values.precision, flag_values.steps,
                                   flag_values.warmup_steps)
    write_json(flag_values.json, results)
    print(format_report(results))
    print(f"\nwrote {flag_values.json}")
    return 0


PROGRAM = Program(NAME, FLAGS, main)


def run() -> None:
    PROGRAM.run()


if __name__ == "__main__":
    run()
