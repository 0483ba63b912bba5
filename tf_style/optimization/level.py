"""The optimization of one batch of images at one size: `tf_style.optimization.core`'s step on `tf.Variable`s,
traced once, with the loop in Python so that callbacks can report between steps.

The loop runs in Python. Every `progress_every` steps (and at snapshots, checkpoints and the end) it reads the
losses back from the device once and hands a `StepReport` to the callbacks, which print, save or log; the
only file it writes itself is a checkpoint, when it is given a `RunCheckpoints`. Between reports the device is
never waited on. What it optimizes against comes from `tf_style.objective.targets`; the scales of a coarse-to-fine run
are `tf_style.optimization.coarse_to_fine`'s.

A KeyboardInterrupt (Ctrl-C, or one raised by the caller's signal handler) between or during steps becomes an
`Interrupted` error that carries the current result; a non-finite loss or image becomes a `DivergedError`
that carries the last finite one. Neither is ever written into a checkpoint.
"""

import dataclasses
import time
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from tf_style.config import StyleConfig
from tf_style.errors import DivergedError, Interrupted
from tf_style.network.features import FeatureExtractor
from tf_style.objective.terms import Objective, objective_for
from tf_style.optimization import core
from tf_style.optimization.checkpoint import RunCheckpoints
from tf_style.tiling.tiled_objective import TiledObjective, tile_progress_reporter
from tf_style.tiling.tiles import TileGrid


@dataclasses.dataclass(frozen=True)
class StepReport:
    """What callbacks see of one image of the run every few steps.

    A batch of images gives one report per image at each reporting step, in batch order.

    Attributes:
        step: steps done so far over all scales (1-based).
        num_steps: steps in the whole run.
        losses: {term name (`Objective.names`: "content", "style", "tv", ..., "total") -> float}, weighted, at
            this step.
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


class LossScale:
    """Dynamic loss scaling for float16 gradients, as Keras' LossScaleOptimizer does it: the loss is multiplied
    by a scale before differentiating so that small gradients do not underflow in float16, and the gradient
    divided by it after; a step whose gradient overflowed is skipped and the scale halved, and after
    `GROWTH_INTERVAL` good steps in a row it doubles.
    """

    INITIAL_SCALE = 2.0 ** 15
    GROWTH_INTERVAL = 2000

    def __init__(self):
        self.scale = tf.Variable(self.INITIAL_SCALE, trainable=False, name="loss_scale")
        self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="loss_scale_good_steps")

    def unscaled(self, gradient: tf.Tensor) -> tuple:
        """(the gradient of the unscaled loss, whether it is finite) from the scaled loss's; updates the scale."""
        gradient = gradient / self.scale
        finite = tf.reduce_all(tf.math.is_finite(gradient))
        grow = tf.logical_and(finite, self.good_steps + 1 >= self.GROWTH_INTERVAL)
        self.scale.assign(tf.where(finite, tf.where(grow, 2.0 * self.scale, self.scale), 0.5 * self.scale))
        self.good_steps.assign(tf.where(tf.logical_and(finite, tf.logical_not(grow)), self.good_steps + 1, 0))
        return gradient, finite


class Optimization:
    """Adam or L-BFGS (`config.optimizer`) on a `tf.Variable` batch of images of one size, with a train step
    traced once for that size.

    The images of a batch do not interact: the loss is a sum of per-image losses and both optimizers work per
    image, so each image follows the path it would follow alone, while one step keeps both cores busy for all
    of them.

    Adam's output is an exponential moving average of the iterates (bias-corrected, as Adam's moments are):
    Adam keeps jittering pixels by about the learning rate, and the average removes that noise. L-BFGS's is
    its last iterate.

    Args:
        extractor: the VGG feature extractor.
        targets: {term name: its targets}, batch B.
        initial_images: float32 [B, H, W, 3] in [0, 255], the start of the optimization.
        config: the options (weights, learning rate, averaging, ...).
        jit_compile: compile the train step with XLA.
        indices: the `index` of each image in the reports; default 0 .. B-1.
        tiles: compute each step's loss and gradient tile by tile on this grid (`tf_style.tiling.tiled_objective`):
            the same objective with only one tile's activations in memory; None: the whole image in one traced step.
            The targets' content features must then be the whole image's.
        objective: the loss terms (`tf_style.objective.terms`); None: the ones `config` asks for.
    """

    def __init__(self, extractor: FeatureExtractor, targets: dict, initial_images: np.ndarray,
                 config: StyleConfig, jit_compile: bool = False, indices: Sequence[int] = None,
                 tiles: Optional[TileGrid] = None, objective: Optional[Objective] = None):
        self.extractor = extractor
        self.objective = objective or objective_for(config)
        self.targets = targets
        self.config = config
        self.indices = list(range(len(initial_images))) if indices is None else list(indices)
        self.image = tf.Variable(initial_images, dtype=tf.float32, name="image")
        self.average = tf.Variable(tf.zeros_like(self.image), name="image_average")
        self.steps_done = tf.Variable(0, dtype=tf.int64, trainable=False, name="steps_done")
        self.optimizer = core.optimizer_named(config.optimizer, config.learning_rate)
        self.average_decay = core.output_decay(self.optimizer, config.average_decay)
        fresh_state = self.optimizer.fresh_state(self.image)
        # Named "<optimizer>_<field>" in checkpoints (adam_first_moment, lbfgs_position_changes, ...).
        self.optimizer_variables = type(fresh_state)(*[
            tf.Variable(value, trainable=False, name=f"{config.optimizer}_{field}")
            for field, value in zip(fresh_state._fields, fresh_state)])
        # float16 gradients underflow without loss scaling.
        self.loss_scale = LossScale() if extractor.compute_dtype == "float16" else None
        self.tiles = tiles
        # Traced without AutoGraph: the step has no Python control flow on tensors, and converting the network's
        # code took a fifth of a five-scale run's start-up (a trace per scale).
        if tiles is None:
            self.train_step = tf.function(self._train_step, jit_compile=jit_compile, autograph=False)
        else:
            self._tiled_objective = TiledObjective(extractor, self.objective, tiles)
            self._apply_gradient_traced = tf.function(self._apply_gradient, autograph=False)
            self.train_step = self._tiled_train_step

    def restart(self, targets: dict, initial_images: np.ndarray, indices: Sequence[int] = None) -> None:
        """Starts over on other images of the same shape, as a new Optimization would, but without tracing
        the train step again (a trace takes seconds; a batch run meets each shape many times)."""
        self.targets = targets
        self.indices = list(range(len(initial_images))) if indices is None else list(indices)
        start = tf.convert_to_tensor(initial_images, tf.float32)
        self._assign(core.start_level(start, self.optimizer.fresh_state(start)))
        self.steps_done.assign(0)

    def _tiled_train_step(self, targets: dict, on_tile=None) -> dict:
        """`train_step` tile by tile; `on_tile` is called with (tiles done, tiles per step) as it goes."""
        # The scale of this step (`LossScale` adjusts it as it goes).
        loss_scale = None if self.loss_scale is None else tf.convert_to_tensor(self.loss_scale.scale)
        terms, gradient = self._tiled_objective.losses_and_gradient(self.image, targets, loss_scale, on_tile)
        self._apply_gradient_traced(gradient)
        return terms

    def _train_step(self, targets: dict) -> dict:
        """One step; returns the weighted loss terms {name: [B]} before it."""
        with tf.GradientTape() as tape:
            terms = self.objective.losses(self.extractor, self.image, targets)
            total = tf.reduce_sum(terms["total"])
            if self.loss_scale is not None:
                total = self.loss_scale.scale * total
        self._apply_gradient(tape.gradient(total, self.image))
        return terms

    def _apply_gradient(self, gradient: tf.Tensor) -> None:
        """`core.step` on the variables: the optimizer's update of the image, the clip and the moving average; under
        loss scaling, `gradient` is the scaled loss's, and a step whose gradient overflowed is skipped."""
        if self.loss_scale is None:
            self._take_step(gradient)
            return
        gradient, finite = self.loss_scale.unscaled(gradient)
        tf.cond(finite, lambda: self._take_step(gradient), lambda: None)

    def _take_step(self, gradient: tf.Tensor) -> None:
        self._assign(core.step(self._level_state(), gradient, self.optimizer, self.average_decay))
        self.steps_done.assign_add(1)

    def _level_state(self) -> core.LevelState:
        return core.LevelState(tf.convert_to_tensor(self.image), tf.convert_to_tensor(self.average),
                               self.optimizer_state())

    def _assign(self, state: core.LevelState) -> None:
        self.image.assign(state.images)
        self.average.assign(state.average)
        self.warm_start(state.optimizer_state)

    def optimizer_state(self) -> tuple:
        """The optimizer's state now (`core.AdamState` or `core.LBFGSState`), for `warm_start`."""
        return type(self.optimizer_variables)(*map(tf.convert_to_tensor, self.optimizer_variables))

    def warm_start(self, optimizer_state: tuple) -> None:
        """Continues the optimizer from `optimizer_state`, the previous level's carried up to this size
        (`optimizer.carried_up`)."""
        for variable, value in zip(self.optimizer_variables, optimizer_state):
            variable.assign(value)

    def state(self) -> dict:
        """The variables that a checkpoint must hold to continue this optimization exactly."""
        state = {"image": self.image, "image_average": self.average, "steps_done": self.steps_done}
        state.update({f"{self.config.optimizer}_{field}": variable
                      for field, variable in zip(self.optimizer_variables._fields, self.optimizer_variables)})
        if self.loss_scale is not None:
            state.update(loss_scale=self.loss_scale.scale, loss_scale_good_steps=self.loss_scale.good_steps)
        return state

    def completed_steps(self) -> int:
        """Steps done so far (restored ones included)."""
        return int(self.steps_done.numpy())

    def result(self) -> np.ndarray:
        """The output images, [B, H, W, 3] (`core.result`)."""
        return core.result(self._level_state(), self.steps_done, self.average_decay).numpy()

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
        # Steps done before (restored from a checkpoint) count as finished, if their result is finite.
        steps_before = self.completed_steps()
        last_finite_image = self.result() if steps_before else None
        if last_finite_image is not None and not np.isfinite(last_finite_image).all():
            last_finite_image = None
        try:
            for step in range(first_step, last_step + 1):
                if self.tiles is None:
                    step_losses = self.train_step(self.targets)
                else:
                    step_losses = self.train_step(self.targets, tile_progress_reporter(
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
