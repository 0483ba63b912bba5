"""How the benchmarks report: the machine they ran on (`processor_name`, `machine_load`), the step benchmark's
printed table (`format_report`), and the results written as JSON (`write_json`).
"""

import json
import platform

from benchmarks.peaks import PEAK_CONV_SHAPE, PEAK_MATMUL_SIZE
from tf_style.files import write_atomically


def processor_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_load(results: dict) -> str:
    """'N cores, load average A at the start, B at the end', from a run's `cpu_count` and load averages."""
    return (f"{results['cpu_count']} cores, load average {results['load_average_at_start']:.2f} at the start, "
            f"{results['load_average_at_end']:.2f} at the end")


def format_report(results: dict) -> str:
    """The printed table: step times, FLOPs and fraction of peak; memory; the preset."""
    peaks, machine = results["peaks"], results["machine"]
    lines = [f"compute plan: {results['plan']['reason']}",
             f"machine: {machine['processor']}, {machine['cpu_count']} cores, TensorFlow {machine['tensorflow']}; "
             f"load average {machine['load_average_at_start']:.2f} at the start, "
             f"{machine['load_average_at_end']:.2f} at the end (other work slows every number)",
             "measured peak (GFLOP/s): " + "; ".join(
                 f"{dtype} matmul {PEAK_MATMUL_SIZE}^2 {peak['matmul_gflops']:.0f}, conv 3x3 "
                 f"{PEAK_CONV_SHAPE[3]}->{PEAK_CONV_SHAPE[3]} on {PEAK_CONV_SHAPE[1]}^2 {peak['conv_gflops']:.0f}"
                 + (f" (PyTorch's {peak['pytorch_conv_gflops']:.0f})" if "pytorch_conv_gflops" in peak else "")
                 for dtype, peak in peaks.items()),
             f"FLOPs counted: {results['flop_counting']}",
             f"s/step: median of the timed steps after {results['settings']['warmup_steps']} warm-up steps; "
             "s/image: s/step divided by the images a step updates; "
             "cores: CPU seconds per wall second while timing (below the core count: other work took some)",
             "",
             f"{'size':>9}  {'configuration':<44} {'steps':>5} {'s/step':>8} {'s/image':>8} {'GFLOP/step':>10} "
             f"{'GFLOP/s':>8} {'of peak':>8} {'cores':>6}"]
    for measurement in results["measurements"]:
        height, width = round(measurement["size"] * 3 / 4), measurement["size"]
        lines.append(
            f"{f'{width}x{height}':>9}  {measurement['name']:<44} {measurement['timed_steps']:>5} "
            f"{measurement['seconds_per_step']:>8.3f} {measurement['seconds_per_image_step']:>8.3f} "
            f"{measurement['gflop_per_step']:>10.1f} "
            f"{measurement['achieved_gflops']:>8.1f} {measurement['fraction_of_peak']:>8.1%} "
            f"{measurement['cores_used']:>6.2f}")
    lines += [f"skipped: {reason}" for reason in results["skipped"]]
    peer = results.get("pytorch")
    if peer is not None:
        height = round(peer["size"] * 3 / 4)
        lines += ["", f"against PyTorch at {peer['size']}x{height}, interleaved, median of {peer['rounds']} rounds "
                  f"(tf_style's plan: {peer['plan']})"]
        lines += [f"  {name:<52} {seconds:>8.3f} s/step" for name, seconds in peer["seconds_per_step"].items()]
        lines += [f"  {name:<52} {ratio:>8.2f}x" for name, ratio in peer["ratios"].items()]
    memory = results["memory"]["sizes"]
    if memory:
        lines += ["", f"peak memory (RSS) of tf_style's step with the plan; {results['memory']['method']}",
                  f"{'size':>9} {'megapixels':>10} {'start MB':>9} {'peak MB':>9} {'growth MB':>10}"]
        for entry in memory:
            height, width = round(entry["size"] * 3 / 4), entry["size"]
            lines.append(f"{f'{width}x{height}':>9} {entry['pixels'] / 1e6:>10.3f} {entry['start_rss_mb']:>9.0f} "
                         f"{entry['peak_rss_mb']:>9.0f} {entry['peak_rss_mb'] - entry['start_rss_mb']:>10.0f}")
        if len(memory) > 1:
            first, last = memory[0], memory[-1]
            slope = (last["peak_rss_mb"] - first["peak_rss_mb"]) / ((last["pixels"] - first["pixels"]) / 1e6)
            lines.append(f"growth with pixels: about {slope:.0f} MB per megapixel "
                         f"(from {first['size']} to {last['size']} px)")
    preset = results["preset"]
    if preset is not None:
        lines += ["", f"preset: {preset['command']}"]
        if "error" in preset:
            lines.append(f"  failed (exit status {preset['returncode']}): {preset['error']}")
        else:
            lines.append(f"  {preset['preset']} ({' '.join(preset['flags'])}) at {preset['size']} px: "
                         f"{preset['wall_seconds']:.1f} s wall, start-up included")
        if "tutorial_1000_steps_seconds" in preset:
            before, after = preset["tutorial_seconds_per_step_around"]
            estimate = preset["tutorial_1000_steps_seconds"]
            lines.append(f"  tutorial recipe, 1000 steps at {preset['size']} px (estimate: 1000 x its s/step, timed "
                         f"just before and after the preset: {before:.3f}, {after:.3f} s): {estimate:.0f} s")
            if "error" not in preset:
                lines.append(f"  the preset / the tutorial's 1000 steps: {preset['wall_seconds'] / estimate:.3f}x")
    return "\n".join(lines)


def write_json(path: str, results: dict) -> None:
    """Writes `results` to `path` atomically, as every file the tool writes."""
    text = json.dumps(results, indent=2) + "\n"
    write_atomically(path, lambda file: file.write(text.encode("utf-8")))
