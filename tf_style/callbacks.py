"""Callbacks for `stylize()`: they receive a `StepReport` every few steps and do the run's I/O."""

import os
import sys

import keras

from tf_style import images
from tf_style.optimize import StepReport


class ProgressBar:
    """A Keras progress bar with the step, the weighted losses and the time left."""

    def __init__(self, num_steps: int, stream=sys.stdout):
        self._num_steps = num_steps
        self._progbar = None
        self._stream = stream

    def __call__(self, report: StepReport) -> None:
        if self._progbar is None:
            self._progbar = keras.utils.Progbar(self._num_steps, stateful_metrics=list(report.losses),
                                                unit_name="step")
        self._progbar.update(report.step, values=list(report.losses.items()), finalize=False)


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
