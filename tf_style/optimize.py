"""The optimization of one batch of images at one size: Adam on a `tf.Variable`, one traced train step, the
moving average of the iterates, and the warm start from a smaller scale.

The loop runs in Python. Every `progress_every` steps (and at snapshots, checkpoints and the end) it reads the
losses back from the device once and hands a `StepReport` to the callbacks, which print, save or log; the
only file it writes itself is a checkpoint, when it is given a `RunCheckpoints`. Between reports the device is
never waited on. What it optimizes against comes from `tf_style.targets`; the scales of a coarse-to-fine run
are `tf_style.schedule`'s.

A KeyboardInterrupt (Ctrl-C, or one raised by the caller's signal handler) between or during steps becomes an
`Interrupted` error that carries the current result; a non-finite loss or image becomes a `DivergedError`
that carries the last finite one. Neither is ever written into a checkpoint.
"""

import dataclasses
import time
from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_style import tiles as tiling
from tf_style.checkpoint import RunCheckpoints
from tf_style.config import StyleConfig
from tf_style.errors import DivergedError, Interrupted
from tf_style.features import FeatureExtractor
from tf_style.targets import StyleTargets, weighted_losses


@dataclasses.dataclass(frozen=True)
class StepReport:
    """What callbacks see of one image of the run every few steps.

    A batch of images gives one report per image at each reporting step, in batch order.

    Attributes:
        step: steps done so far over all scales (1-based).
        num_steps: steps in the whole run.
        losses: {"total", "content", "style", "tv"} -> float, weighted, at this step.
        image: the current result (the moving average when averaging is on), float32 [H, W, 3] in [0, 255].
        elapsed_seconds: wall time since the first step started (tracing included).
        scale_index: which scale of a coarse-to-fine run (0-based).
        num_scales: how many scales the run has.
        index: which image of the caller's input this is (its position in the batch, unless the caller
            numbered them otherwise).
    """

    step: int
    num_steps: int
    losses: dict
    image: np.ndarray
    elapsed_seconds: float
    scale_index: int = 0
    num_scales: int = 1
    index: int = 0


Callback = Callable[[StepReport], None]


@dataclasses.dataclass(frozen=True)
class RunPlacement:
    """Where one `Optimization.run` sits in a longer run (a coarse-to-fine one), for the reports.

    Attributes:
        first_step: the run-wide number of this run's first step (1-based).
        total_steps: steps in the whole run; None: this run's own steps.
        scale_index: which scale this is (0-based).
        num_scales: how many scales the whole run has.
        start_time: `time.perf_counter()` when the whole run started; None: when this run starts.
    """

    first_step: int = 1
    total_steps: Optional[int] = None
    scale_index: int = 0
    num_scales: int = 1
    start_time: Optional[float] = None


def adam_optimizer(learning_rate: float) -> keras.optimizers.Adam:
    """Keras' Adam with beta_2 = 0.99: the optimizer of every stylization, whose constants the served graph's
    written-out Adam reads (`tf_style.export_stylizer`)."""
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_2=0.99)


def upsampled_adam_moments(first_moment: tf.Tensor, second_moment: tf.Tensor, height, width) -> tuple:
    """Adam's moments [B, h, w, 3] carried to a larger scale: [B, height, width, 3] each (see `warm_start`).

    The sizes may be scalar tensors, as in the served graph.
    """
    ratio = (tf.cast(tf.shape(first_moment)[1] * tf.shape(first_moment)[2], tf.float64)
             / tf.cast(height * width, tf.float64))
    size = tf.stack([height, width])
    first_moment = tf.cast(ratio, tf.float32) * tf.image.resize(first_moment, size, method="bicubic")
    # Bilinear, and clipped at 0: the second moment must stay non-negative.
    second_moment = tf.cast(ratio ** 2, tf.float32) * tf.nn.relu(tf.image.resize(second_moment, size,
                                                                                 method="bilinear"))
    return first_moment, second_moment


class Optimization:
    """Adam on a `tf.Variable` batch of images of one size, with a train step traced once for that size.

    The images of a batch do not interact: the loss is a sum of per-image losses and Adam works per pixel, so
    each image follows the path it would follow alone, while one step keeps both cores busy for all of them.

    The output is an exponential moving average of the iterates (bias-corrected, as Adam's moments are):
    Adam keeps jittering pixels by about the learning rate, and the average removes that noise.

    Args:
        extractor: the VGG feature extractor.
        targets: content features and style statistics, batch B.
        initial_images: float32 [B, H, W, 3] in [0, 255], the start of the optimization.
        config: the options (weights, learning rate, averaging, ...).
        jit_compile: compile the train step with XLA.
        indices: the `index` of each image in the reports; default 0 .. B-1.
        tiles: compute each step's loss and gradient tile by tile on this grid (`tf_style.tiles`): the same
            objective with only one tile's activations in memory; None: the whole image in one traced step.
            The targets' content features must then be the whole image's.
    """

    def __init__(self, extractor: FeatureExtractor, targets: StyleTargets, initial_images: np.ndarray,
                 config: StyleConfig, jit_compile: bool = False, indices: Sequence[int] = None,
                 tiles: Optional[tiling.TileGrid] = None):
        self.extractor = extractor
        self.targets = targets
        self.config = config
        self.indices = list(range(len(initial_images))) if indices is None else list(indices)
        self.image = tf.Variable(initial_images, dtype=tf.float32, name="image")
        self.average = tf.Variable(tf.zeros_like(self.image), name="image_average")
        self.steps_done = tf.Variable(0, dtype=tf.int64, trainable=False, name="steps_done")
        self.optimizer = adam_optimizer(config.learning_rate)
        if extractor.compute_dtype == "float16":
            # float16 gradients underflow without loss scaling.
            self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
        # Building the optimizer's slots now keeps the first call from tracing the step twice.
        self.optimizer.build([self.image])
        self.tiles = tiles
        if tiles is None:
            self.train_step = tf.function(self._train_step, jit_compile=jit_compile)
        else:
            self._tiled_objective = tiling.TiledObjective(extractor, config, tiles)
            self._apply_gradient_traced = tf.function(self._apply_gradient)
            self.train_step = self._tiled_train_step

    def restart(self, targets: StyleTargets, initial_images: np.ndarray, indices: Sequence[int] = None) -> None:
        """Starts over on other images of the same shape, as a new Optimization would, but without tracing
        the train step again (a trace takes seconds; a batch run meets each shape many times)."""
        self.targets = targets
        self.indices = list(range(len(initial_images))) if indices is None else list(indices)
        self.image.assign(initial_images)
        self.average.assign(tf.zeros_like(self.image))
        self.steps_done.assign(0)
        self.optimizer.iterations.assign(0)
        for moment in self._adam_moments():
            moment.assign(tf.zeros_like(moment))

    def _tiled_train_step(self, targets: StyleTargets, on_tile=None) -> dict:
        """`train_step` tile by tile; `on_tile` is called with (tiles done, tiles per step) as it goes."""
        # The scale of this step (the optimizer adjusts it as it goes): what its `scale_loss` multiplies by.
        loss_scale = self.optimizer.scale_loss(tf.constant(1.0)) if isinstance(
            self.optimizer, keras.optimizers.LossScaleOptimizer) else None
        terms, gradient = self._tiled_objective.losses_and_gradient(self.image, targets, loss_scale, on_tile)
        self._apply_gradient_traced(gradient)
        return terms

    def _train_step(self, targets: StyleTargets) -> dict:
        """One Adam step; returns the weighted loss terms {name: [B]} before it."""
        with tf.GradientTape() as tape:
            terms = weighted_losses(self.extractor, self.image, targets, self.config)
            total = tf.reduce_sum(terms["total"])
            if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
                total = self.optimizer.scale_loss(total)
        gradient = tape.gradient(total, self.image)
        self._apply_gradient(gradient)
        return terms

    def _apply_gradient(self, gradient: tf.Tensor) -> None:
        """Adam's update of the image, the clipping and the moving average."""
        self.optimizer.apply_gradients([(gradient, self.image)])
        # Pixel values outside [0, 255] cannot be saved; clipping keeps Adam inside the valid range.
        self.image.assign(tf.clip_by_value(self.image, 0.0, 255.0))
        decay = self.config.average_decay
        self.average.assign(decay * self.average + (1.0 - decay) * self.image)
        self.steps_done.assign_add(1)

    def _adam_moments(self) -> tuple:
        """Adam's first and second moment variables of the image, float32 [B, H, W, 3] each.

        Keras 3's Adam keeps them in private lists (`_momentums`, `_velocities`), one entry per variable;
        under loss scaling they belong to the wrapped optimizer.
        """
        optimizer = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        return optimizer._momentums[0], optimizer._velocities[0]

    def adam_state(self) -> tuple:
        """Adam's first moment, second moment (float32 [B, H, W, 3] each) and step count, for `warm_start`."""
        first_moment, second_moment = self._adam_moments()
        return tf.identity(first_moment), tf.identity(second_moment), tf.identity(self.optimizer.iterations)

    def warm_start(self, adam_state: tuple) -> None:
        """Continues Adam from the `adam_state()` of the previous, smaller scale, upsampled to this size.

        A fresh Adam moves every pixel by about the learning rate on its first steps whatever the gradient,
        which adds noise at the start of each scale. Carrying the moments (and the step count, so that the
        bias corrections stay small) continues the optimization instead. All loss terms are means over
        positions, so a pixel's gradient shrinks with the number of pixels: the first moment is scaled by the
        ratio of pixel counts and the second by its square, which keeps Adam's step size.
        """
        first_moment, second_moment, iterations = adam_state
        first_moment_here, second_moment_here = self._adam_moments()
        first_moment, second_moment = upsampled_adam_moments(first_moment, second_moment, *self.image.shape[1:3])
        first_moment_here.assign(first_moment)
        second_moment_here.assign(second_moment)
        self.optimizer.iterations.assign(iterations)

    def state(self) -> dict:
        """The variables that a checkpoint must hold to continue this optimization exactly."""
        return {"image": self.image, "image_average": self.average, "steps_done": self.steps_done,
                "optimizer": self.optimizer}

    def completed_steps(self) -> int:
        """Steps done so far (restored ones included)."""
        return int(self.steps_done.numpy())

    def result(self) -> np.ndarray:
        """The output images, [B, H, W, 3]: the bias-corrected moving average, or the last iterate."""
        decay = self.config.average_decay
        steps_done = self.completed_steps()
        if decay == 0.0 or steps_done == 0:
            return self.image.numpy()
        correction = 1.0 - decay ** steps_done
        return np.clip(self.average.numpy() / correction, 0.0, 255.0)

    def run(self, num_steps: int, callbacks: Sequence[Callback] = (), placement: RunPlacement = RunPlacement(),
            checkpoints: RunCheckpoints = None) -> np.ndarray:
        """Runs `num_steps` more steps; returns the results, float32 [B, H, W, 3].

        Reports every `config.progress_every` steps, at every `config.save_every`-th step and at the last.

        Args:
            placement: where this run sits in a coarse-to-fine run, for the reports.
            checkpoints: if given, tracking this optimization's `state()`; saved every `checkpoints.every`
                steps, at the last step and on an interrupt.

        Raises:
            DivergedError: a loss or an image became non-finite; `error.image` is the last finite batch of
                results (None if there was none).
            Interrupted: a KeyboardInterrupt arrived; `error.image` is the current batch of results (None if
                no step had finished).
        """
        start_time = time.perf_counter() if placement.start_time is None else placement.start_time
        first_step = placement.first_step
        total_steps = placement.total_steps or num_steps
        progress_every, save_every = self.config.progress_every, self.config.save_every
        last_step = first_step + num_steps - 1
        # Steps done before (restored from a checkpoint) count as finished: their result is finite.
        steps_before = self.completed_steps()
        last_finite_image = self.result() if steps_before else None
        try:
            for step in range(first_step, last_step + 1):
                if self.tiles is None:
                    step_losses = self.train_step(self.targets)
                else:
                    step_losses = self.train_step(self.targets, tiling.tile_progress_reporter(
                        callbacks, step, total_steps, start_time, self.indices[0]))
                is_last = step == last_step
                checkpoint_now = checkpoints is not None and (is_last or step % checkpoints.every == 0)
                if not (is_last or checkpoint_now or step % progress_every == 0
                        or (save_every and step % save_every == 0)):
                    continue
                losses_now = {name: value.numpy() for name, value in step_losses.items()}
                results = self.result()
                losses_finite = all(np.isfinite(value).all() for value in losses_now.values())
                if not losses_finite or not self._is_finite(results):
                    raise _diverged(step, f"loss {np.max(losses_now['total']):.4g}", last_finite_image)
                last_finite_image = results
                if checkpoint_now:
                    checkpoints.save(step)
                elapsed = time.perf_counter() - start_time
                for position, index in enumerate(self.indices):
                    report = StepReport(step, total_steps,
                                        {name: float(value[position]) for name, value in losses_now.items()},
                                        results[position], elapsed, placement.scale_index,
                                        placement.num_scales, index)
                    for callback in callbacks:
                        callback(report)
        except KeyboardInterrupt:
            step = first_step - 1 + self.completed_steps() - steps_before
            raise self._interrupted(step, total_steps, last_finite_image, checkpoints) from None
        return last_finite_image

    def _is_finite(self, result: np.ndarray) -> bool:
        """Whether the result and the iterate are finite: only then may they be reported or checkpointed."""
        return bool(np.isfinite(result).all() and tf.reduce_all(tf.math.is_finite(self.image)))

    def _interrupted(self, step: int, total_steps: int, last_finite_image, checkpoints):
        """The error to raise for a KeyboardInterrupt at `step`: Interrupted with the current result, saved."""
        if not self.completed_steps():
            return Interrupted(interrupted_message(step, total_steps), step, None)
        image = self.result()
        if not self._is_finite(image):
            return _diverged(step, "non-finite image", last_finite_image)
        if checkpoints is not None:
            checkpoints.save(step)
        return Interrupted(interrupted_message(step, total_steps), step, image)


def interrupted_message(step: int, total_steps: int) -> str:
    """What an `Interrupted` error says: the step of the whole run it stopped at."""
    return f"interrupted at step {step} of {total_steps}" if step else "interrupted before the first step"


def _diverged(step: int, what: str, last_finite_image) -> DivergedError:
    return DivergedError(f"the optimization diverged at step {step} ({what}); use a smaller --learning_rate "
                         "(or smaller loss weights)", step=step, image=last_finite_image)
