"""Adam against L-BFGS: the loss each reaches after a given number of evaluations of the network and its gradient,
on photo x painting pairs: `python -m benchmarks.optimizer_front OUT.png CONTENT:STYLE [CONTENT:STYLE ...]`.

Each pair is run once per optimizer at one scale (`--size`, no pyramid, so that every evaluation costs the same),
from the photo, with the defaults otherwise, and the total weighted loss is read every 10 evaluations (the
iterate's loss before the step: for Adam that is not its averaged output, whose loss is a little lower). The
plot shows, for each pair, each optimizer's loss relative to Adam's after all `--steps`; the numbers are written
beside it as JSON. Counting evaluations rather than seconds makes the front independent of the machine: both
optimizers spend all but a few vector operations of a step in the network.
"""

import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import tf_style  # noqa: E402
from tf_style.config import OPTIMIZERS  # noqa: E402

PROGRESS_EVERY = 10


def loss_curve(content: str, style: str, optimizer: str, size: int, steps: int) -> list:
    """[(evaluations, total loss)] of one run, every `PROGRESS_EVERY` evaluations."""
    curve = []
    tf_style.stylize(content, style, size=size, initial_size=0, initial_steps=None, steps=steps,
                     optimizer=optimizer, progress_every=PROGRESS_EVERY, log=None,
                     callbacks=[lambda report: curve.append((report.step, report.losses["total"]))])
    return curve


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="the plot (PNG); the numbers go to the same name with .json")
    parser.add_argument("pairs", nargs="+", help="CONTENT:STYLE image paths")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    fronts = {}
    for pair in args.pairs:
        content, style = pair.split(":")
        name = f"{os.path.splitext(os.path.basename(content))[0]} x {os.path.splitext(os.path.basename(style))[0]}"
        fronts[name] = {optimizer: loss_curve(content, style, optimizer, args.size, args.steps)
                        for optimizer in OPTIMIZERS}
        final = {optimizer: curve[-1][1] for optimizer, curve in fronts[name].items()}
        print(f"{name}: final total loss " + ", ".join(f"{k} {v:.5g}" for k, v in final.items()), flush=True)
    with open(os.path.splitext(args.output)[0] + ".json", "w") as numbers:
        json.dump({"size": args.size, "steps": args.steps, "fronts": fronts}, numbers, indent=1)
    figure, axes = plt.subplots(1, len(fronts), figsize=(4 * len(fronts), 3.5), squeeze=False)
    for axis, (name, curves) in zip(axes[0], fronts.items()):
        reference = curves["adam"][-1][1]
        for optimizer, curve in curves.items():
            axis.plot([step for step, _ in curve], [loss / reference for _, loss in curve], label=optimizer)
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("evaluations")
        axis.set_ylim(0.8, 2.0)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"total loss / Adam's after {args.steps}")
    axes[0][0].legend()
    figure.tight_layout()
    figure.savefig(args.output, dpi=90)
    return 0


if __name__ == "__main__":
    sys.exit(main())
