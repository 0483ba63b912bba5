"""The default run's time against the result's size, beside the TensorFlow tutorial recipe's 1000 steps:
`python -m benchmarks.time_by_size OUT.png [--sizes 256,512,1024,2048] [--preset flags/quality.cfg]`.

At each size the preset runs once through the CLI on the bundled pair, start-up included (`time_preset`), and the
tutorial recipe's step (`steps.TutorialStep`) is timed just before and just after it: the machine's speed drifts
from minute to minute, so its 1000 steps are estimated from the mean of the two, as `benchmarks.bench` does for
512 px. The plot (log-log) shows both times and the ratio; the numbers go beside it as JSON, with the processor.
"""

import argparse
import gc
import json
import os
import sys

from tf_style.cli.startup import native_stderr_silenced

with native_stderr_silenced():
    import keras
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.cli_runs import time_preset
    from benchmarks.report import processor_name
    from benchmarks.steps import TutorialStep, parse_sizes
    from benchmarks.timing import time_steps

TUTORIAL_STEPS = 1000


def tutorial_seconds_per_step(size: int, num_steps: int, warmup_steps: int) -> float:
    """The median seconds of the tutorial recipe's step at `size`, its model freed afterwards."""
    step = TutorialStep(size)
    seconds = time_steps(step, num_steps, warmup_steps, budget_seconds=60.0)["seconds_per_step"]
    del step
    keras.backend.clear_session()
    gc.collect()
    return seconds


def measure(sizes, preset: str, num_steps: int, warmup_steps: int) -> list:
    rows = []
    for size in sizes:
        print(f"{size} px: tutorial recipe, before", file=sys.stderr, flush=True)
        before = tutorial_seconds_per_step(size, num_steps, warmup_steps)
        print(f"{size} px: {preset} through the CLI", file=sys.stderr, flush=True)
        run = time_preset(preset, size)
        if run["returncode"] != 0:
            raise SystemExit(f"{preset} at {size} px failed: {run['error']}")
        print(f"{size} px: tutorial recipe, after", file=sys.stderr, flush=True)
        after = tutorial_seconds_per_step(size, num_steps, warmup_steps)
        tutorial = TUTORIAL_STEPS * (before + after) / 2
        rows.append({"size": size, "preset_seconds": run["wall_seconds"],
                     "tutorial_seconds_per_step_around": [before, after],
                     "tutorial_1000_steps_seconds": tutorial, "ratio": run["wall_seconds"] / tutorial})
        print(f"{size} px: {run['wall_seconds']:.1f} s, tutorial's 1000 steps {tutorial:.0f} s, "
              f"{run['wall_seconds'] / tutorial:.3f}x", flush=True)
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
