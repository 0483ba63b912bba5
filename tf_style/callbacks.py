"""Callbacks for `stylize()`: they receive a `StepReport` every few steps and do the run's I/O."""

import os

import keras

from tf_style import images
from tf_style.optimize import StepReport


class ProgressBar:
    """A Keras progress bar over the whole run (step, weighted losses, time left), and a line per scale."""

    def __init__(self):
        self._progbar = None
        self._scale_index = None

    def __call__(self, report: StepReport) -> None:
        if report.scale_index != self._scale_index:
            self._scale_index = report.scale_index
            height, width = report.image.shape[:2]
            if report.num_scales > 1:
                print(f"\nscale {report.scale_index + 1}/{report.num_scales}: {width}x{height}", flush=True)
        if self._progbar is None:
            self._progbar = keras.utils.Progbar(report.num_steps, stateful_metrics=list(report.losses),
                                                unit_name="step")
        self._progbar.update(report.step, values=list(report.losses.items()))


class SnapshotSaver:
    """Writes the current image every `every` steps next to the output: `result_step0100.png`."""

    def __init__(self, output_path: str, every: int):
        self._stem, self._extension = os.path.splitext(output_path)
        self._every = every

    def path_for(self, step: int) -> str:
        return f"{self._stem}_step{step:04d}{self._extension}"

    def __call__(self, report: StepReport) -> None:
        if report.step % self._every == 0 and report.step != report.num_steps:
            images.save_image(self.path_for(report.step), report.image)
