"""The default run's time against the result's size, beside the TensorFlow tutorial recipe's 1000 steps:
`python -m benchmarks.time_by_size OUT.png [--sizes 256,512,1024,2048] [--preset flags/quality.cfg]`.

At each size the preset runs once through the CLI on the bundled pair, start-up included (`time_preset`), and the
tutorial recipe's step (`steps.TutorialStep`) is timed just before and just after it: the machine's speed drifts
from minute to minute, so its 1000 steps are estimated from the mean of the two, as `benchmarks.bench` does for
512 px. The plot (log-log) shows both times and the ratio; the numbers go beside it as JSON, with the processor.
"""

import argparse
import json
import os
import sys

from tf_style.cli.startup import native_stderr_silenced

with native_stderr_silenced():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.cli_runs import time_preset
    from benchmarks.report import processor_name
    from benchmarks.steps import parse_sizes, timed_against_tutorial

TUTORIAL_STEPS = 1000


def measure(sizes, preset: str, num_steps: int, warmup_steps: int) -> list:
    rows = []
    for size in sizes:
        run = timed_against_tutorial(lambda: time_preset(preset, size), size, num_steps, warmup_steps,
                                     lambda message: print(message, file=sys.stderr, flush=True))
        if run["returncode"] != 0:
            raise SystemExit(f"{preset} at {size} px failed: {run['error']}")
        rows.append({"size": size, "preset_seconds": run["wall_seconds"],
                     "tutorial_seconds_per_step_around": run["tutorial_seconds_per_step_around"],
                     "tutorial_1000_steps_seconds": run["tutorial_1000_steps_seconds"], "ratio": run["ratio"]})
        print(f"{size} px: {run['wall_seconds']:.1f} s, tutorial's 1000 steps {run['tutorial_1000_steps_seconds']:.0f} "
              f"s, {run['ratio']:.3f}x", flush=True)
    return rows


def plot(rows: list, preset: str, processor: str, path: str) -> None:
    sizes = [row["size"] for row in rows]
    figure, axis = plt.subplots(figsize=(5.5, 4))
    axis.loglog(sizes, [row["tutorial_1000_steps_seconds"] for row in rows], "o-",
                label=f"tutorial recipe, {TUTORIAL_STEPS} steps (estimated from its step)")
    axis.loglog(sizes, [row["preset_seconds"] for row in rows], "o-", label=f"tf_style, {preset}")
    for row in rows:
        axis.annotate(f"{row['ratio']:.3f}x", (row["size"], row["preset_seconds"]), textcoords="offset points",
                      xytext=(4, -12), fontsize=8)
    axis.set_xticks(sizes, [str(size) for size in sizes])
    axis.set_xlabel("long side of the result (px)")
    axis.set_ylabel("seconds (start-up included for tf_style)")
    axis.set_title(processor, fontsize=8)
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="the plot (PNG); the numbers go to the same name with .json")
    parser.add_argument("--sizes", default="256,512,1024,2048", help="long sides, comma-separated (4:3)")
    parser.add_argument("--preset", default="flags/quality.cfg", help="the flagfile timed (default: the defaults)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps of the tutorial recipe at each size")
    parser.add_argument("--warmup_steps", type=int, default=2)
    args = parser.parse_args(argv)
    sizes = parse_sizes(args.sizes.split(","))
    rows = measure(sizes, args.preset, args.steps, args.warmup_steps)
    processor = f"{processor_name()}, {os.cpu_count()} cores"
    with open(os.path.splitext(args.output)[0] + ".json", "w") as numbers:
        json.dump({"processor": processor, "preset": args.preset, "rows": rows}, numbers, indent=1)
    plot(rows, args.preset, processor, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
