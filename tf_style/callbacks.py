"""Callbacks for `stylize()`: they receive a `StepReport` every few steps and do the run's I/O."""

import os
import sys
from typing import Mapping, Sequence

import keras
import tensorflow as tf

from tf_style import images
from tf_style.errors import WriteError
from tf_style.optimization.level import Callback, StepReport
from tf_style.tiling.tiled_objective import TileProgress


class ProgressBar:
    """A Keras progress bar over the whole run (step, weighted losses, time left), and a line per scale.

    In a batch run every image reports at each step; the bar shows the first one's losses, and starts over
    when the next batch starts.
    """

    def __init__(self):
        self._progbar = None
        self._scale_index = None
        self._step = 0

    def __call__(self, report: StepReport) -> None:
        if report.step == self._step:
            return  # another image of the batch, at the step already shown
        if report.step < self._step:
            self._progbar, self._scale_index = None, None
        self._step = report.step
        if report.scale_index != self._scale_index:
            self._scale_index = report.scale_index
            height, width = report.image.shape[:2]
            if report.num_scales > 1:
                print(f"\nscale {report.scale_index + 1}/{report.num_scales}: {width}x{height}", flush=True)
        if self._progbar is None:
            self._progbar = keras.utils.Progbar(report.num_steps, stateful_metrics=list(report.losses),
                                                unit_name="step")
        self._progbar.update(report.step, values=list(report.losses.items()))

    def on_tile(self, progress: TileProgress) -> None:
        """Within a tiled step (a 4096 px step takes minutes on 2 cores): which tile, on the bar's line."""
        if not sys.stdout.isatty():
            return
        print(f"\rstep {progress.step}/{progress.num_steps}: {progress.describe()} "
              f"({progress.elapsed_seconds:.0f} s)\033[K", end="", flush=True)


class SnapshotSaver:
    """Writes the current image every `every` steps next to the output: `result_step0100.png`.

    Attributes:
        saved: the paths written so far, in step order.
    """

    def __init__(self, output_path: str, every: int):
        self._stem, self._extension = os.path.splitext(output_path)
        self._every = every
        self.saved = []

    def path_for(self, step: int) -> str:
        return f"{self._stem}_step{step:04d}{self._extension}"

    def __call__(self, report: StepReport) -> None:
        if report.step % self._every == 0 and report.step != report.num_steps:
            path = self.path_for(report.step)
            images.save_image(path, report.image)
            self.saved.append(path)


class TensorBoardLogger:
    """Writes a run's losses, speed and images as `tf.summary` events, for `tensorboard --logdir`.

    Scalars `loss/total`, `loss/content`, `loss/style`, `loss/tv` and `steps_per_second` at every report (and in a
    tiled run `step_fraction_done` after each tile, against the tiles done); the
    image (`image`) every `image_every` steps and at the last step. Events are flushed at each report, so
    TensorBoard shows the run as it goes.

    Args:
        run_directory: this run's directory under the log directory (one per image).
        image_every: log the image every this many steps; 0 only at the end.
    """

    def __init__(self, run_directory: str, image_every: int = 0):
        self._run_directory = run_directory
        self._image_every = image_every
        self._writer = None
        self._last = None  # (step, elapsed seconds) at the previous report

    def __call__(self, report: StepReport) -> None:
        try:
            self._write(report)
        except tf.errors.OpError as error:  # TensorFlow's event writer reports a full disk as an OpError
            raise WriteError(self._run_directory, error) from None
        self._last = (report.step, report.elapsed_seconds)

    def on_tile(self, progress: TileProgress) -> None:
        """`step_fraction_done`: how far the tiled step under way is, after each tile (x axis: tiles done)."""
        try:
            tiles_before = (progress.step - 1) * progress.tiles_per_step
            with self._file_writer().as_default(step=tiles_before + progress.tiles_done):
                tf.summary.scalar("step_fraction_done", progress.tiles_done / progress.tiles_per_step)
            self._writer.flush()
        except tf.errors.OpError as error:
            raise WriteError(self._run_directory, error) from None

    def _file_writer(self):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self._run_directory)
        return self._writer

    def _write(self, report: StepReport) -> None:
        with self._file_writer().as_default(step=report.step):
            for name, value in report.losses.items():
                tf.summary.scalar(f"loss/{name}", value)
            # Since the last report; the first one's includes the tracing of the train step.
            last_step, last_seconds = self._last or (0, 0.0)
            if report.step > last_step:
                steps_per_second = (report.step - last_step) / max(report.elapsed_seconds - last_seconds, 1e-9)
                tf.summary.scalar("steps_per_second", steps_per_second)
            if report.step == report.num_steps or (self._image_every and report.step % self._image_every == 0):
                tf.summary.image("image", report.image[None] / 255.0)
        self._writer.flush()


class ForEachImage:
    """Sends each report to the callbacks of its image: `{index: [callback, ...]}`, for batch runs."""

    def __init__(self, callbacks_by_index: Mapping[int, Sequence[Callback]]):
        self._callbacks_by_index = callbacks_by_index

    def __call__(self, report: StepReport) -> None:
        for callback in self._callbacks_by_index.get(report.index, ()):
            callback(report)

    def on_tile(self, progress: TileProgress) -> None:
        for callback in self._callbacks_by_index.get(progress.index, ()):
            if hasattr(callback, "on_tile"):
                callback.on_tile(progress)
