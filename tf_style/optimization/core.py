"""The one optimization loop of a stylization, as tensor code: Adam or L-BFGS on the image, the clip to
[0, 255], the moving average of the iterates, and the optimizer's state carried from one level of the pyramid
to the next.

An optimizer (`Adam`, `LBFGS`) is a frozen settings object whose methods are pure functions of a state
NamedTuple: `fresh_state`, `update`, `carried_up`, `state_shapes`.

Both runners call these functions: the library (`tf_style.optimization.level.Optimization`) keeps the state in
`tf.Variable`s and calls `step` from a traced train step, one step at a time, so that its callbacks can report
between steps; the served stylizer (`tf_style.serving.stylizer`) calls `run_steps`, whose `tf.while_loop` calls
the same `step` with loop-carried tensors, so that concurrent requests share nothing but the network. An option
added here reaches both.
"""

import dataclasses
from typing import Callable, NamedTuple

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Adam:
    """Adam's settings (Kingma & Ba). beta_2 = 0.99 rather than 0.999: the image's gradient changes as the
    strokes form, and a shorter memory of its scale follows it.

    Attributes:
        learning_rate: the step size, in grey levels of [0, 255] pixels.
    """

    learning_rate: float
    beta_1: float = 0.9
    beta_2: float = 0.99
    epsilon: float = 1e-7

    # Adam keeps jittering pixels by about the learning rate: its output is the moving average of the iterates.
    averages = True

    def fresh_state(self, images: tf.Tensor) -> "AdamState":
        """Adam before its first step: zero moments shaped like `images`, no iterations."""
        return AdamState(tf.zeros_like(images), tf.zeros_like(images), tf.constant(0, tf.int64))

    def carried_up(self, state: "AdamState", height, width) -> "AdamState":
        """Adam's state carried to a larger level of height x width (the sizes may be scalar tensors).

        A fresh Adam moves every pixel by about the learning rate on its first steps whatever the gradient,
        which adds noise at the start of each level. Carrying the moments (and the step count, so that the bias
        corrections stay small) continues the optimization instead. All loss terms are means over positions, so
        a pixel's gradient shrinks with the number of pixels: the first moment is scaled by the ratio of pixel
        counts and the second by its square, which keeps Adam's step size.
        """
        first_moment, second_moment, iterations = state
        ratio = (tf.cast(tf.shape(first_moment)[1] * tf.shape(first_moment)[2], tf.float64)
                 / tf.cast(height * width, tf.float64))
        size = tf.stack([height, width])
        first_moment = tf.cast(ratio, tf.float32) * tf.image.resize(first_moment, size, method="bicubic")
        # Bilinear, and clipped at 0: the second moment must stay non-negative.
        second_moment = tf.cast(ratio ** 2, tf.float32) * tf.nn.relu(tf.image.resize(second_moment, size,
                                                                                     method="bilinear"))
        return AdamState(first_moment, second_moment, iterations)

    def update(self, images: tf.Tensor, state: "AdamState", gradient: tf.Tensor) -> tuple:
        """(the images moved by one step along `gradient`, before the clip; Adam's next state). Keras 3's
        `Adam.update_step`, term for term."""
        first_moment, second_moment, iterations = state
        local_step = tf.cast(iterations + 1, tf.float32)
        beta_1_power = tf.pow(tf.constant(self.beta_1, tf.float32), local_step)
        beta_2_power = tf.pow(tf.constant(self.beta_2, tf.float32), local_step)
        alpha = tf.constant(self.learning_rate, tf.float32) * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        first_moment = first_moment + (gradient - first_moment) * (1 - self.beta_1)
        second_moment = second_moment + (tf.square(gradient) - second_moment) * (1 - self.beta_2)
        images = images - (first_moment * alpha) / (tf.sqrt(second_moment) + self.epsilon)
        return images, AdamState(first_moment, second_moment, iterations + 1)

    def state_shapes(self, images_shape: tf.TensorShape) -> "AdamState":
        """The shapes of a state for images of `images_shape` (a loop's shape invariants)."""
        return AdamState(images_shape, images_shape, tf.TensorShape([]))


class AdamState(NamedTuple):
    """Adam's moments of the image, float32 [B, H, W, 3] each, and its steps so far, int64 []."""

    first_moment: tf.Tensor
    second_moment: tf.Tensor
    iterations: tf.Tensor


@dataclasses.dataclass(frozen=True)
class LBFGS:
    """Limited-memory BFGS (Nocedal & Wright, algorithm 7.4) with a unit step and no line search, as
    jcjohnson/neural-style and Gatys et al. run it: each step takes the gradient through the inverse Hessian
    that the last `history_size` steps' changes of position and gradient describe (the two-loop recursion).

    Every image of a batch has its own history (all products are per image), so each follows the path it would
    follow alone. The step is not damped: the loss is a sum of squares whose curvature the history learns
    within a few steps, and a step that leaves [0, 255] is clipped as Adam's is.

    Attributes:
        first_step: the root-mean-square change of a pixel, in grey levels, on the steps that have no curvature
            to go by yet (a level's first): a gradient step of that size.
        history_size: how many pairs of changes the inverse Hessian is built from.
    """

    first_step: float
    history_size: int = 8

    # L-BFGS converges rather than jitters: its output is the last iterate.
    averages = False

    def fresh_state(self, images: tf.Tensor) -> "LBFGSState":
        """L-BFGS before its first step at `images`' size: an empty history."""
        history = tf.zeros(tf.concat([[self.history_size], tf.shape(images)], 0))
        no_pairs = tf.zeros(tf.stack([self.history_size, tf.shape(images)[0]]))
        return LBFGSState(tf.zeros_like(images), tf.zeros_like(images), history, history, no_pairs,
                          tf.zeros_like(images[:, 0, 0, 0]), tf.constant(0, tf.int64))

    def carried_up(self, state: "LBFGSState", height, width) -> "LBFGSState":
        """A fresh state at height x width: the history describes the curvature of the level below, in its
        pixels, and a larger level starts over (its first step takes `first_step`)."""
        images_shape = tf.stack([tf.shape(state.previous_images)[0], height, width, 3])
        return self.fresh_state(tf.zeros(images_shape))

    def update(self, images: tf.Tensor, state: "LBFGSState", gradient: tf.Tensor) -> tuple:
        """(the images moved by one step along `gradient`, before the clip; the next state)."""
        position_change = images - state.previous_images
        gradient_change = gradient - state.previous_gradient
        curvature = _per_image_dot(position_change, gradient_change)
        gradient_change_norm = _per_image_dot(gradient_change, gradient_change)
        # A pair is kept only where the loss curved upwards along the step (s.y > 0, the condition that keeps
        # the inverse Hessian positive definite); the others enter the history with a weight of 0 and so
        # change nothing. A level's first step has no pair.
        usable = tf.logical_and(state.iterations > 0, curvature > 1e-10 * tf.sqrt(
            _per_image_dot(position_change, position_change) * gradient_change_norm))
        weight = tf.where(usable, 1.0 / tf.where(usable, curvature, 1.0), 0.0)
        position_changes = tf.concat([state.position_changes[1:], position_change[tf.newaxis]], 0)
        gradient_changes = tf.concat([state.gradient_changes[1:], gradient_change[tf.newaxis]], 0)
        weights = tf.concat([state.pair_weights[1:], weight[tf.newaxis]], 0)
        scale = tf.where(usable, curvature / tf.maximum(gradient_change_norm, 1e-30), state.scale)

        direction = gradient
        coefficients = []
        for index in reversed(range(self.history_size)):
            coefficient = weights[index] * _per_image_dot(position_changes[index], direction)
            coefficients.insert(0, coefficient)
            direction = direction - _per_pixel(coefficient) * gradient_changes[index]
        # The initial inverse Hessian: s.y / y.y of the last usable pair; before any, a gradient step of
        # `first_step` grey levels (root mean square).
        rms = tf.sqrt(tf.reduce_mean(tf.square(direction), axis=[1, 2, 3]))
        first_scale = self.first_step / tf.maximum(rms, 1e-30)
        direction = _per_pixel(tf.where(scale > 0, scale, first_scale)) * direction
        for index in range(self.history_size):
            correction = coefficients[index] - weights[index] * _per_image_dot(gradient_changes[index], direction)
            direction = direction + _per_pixel(correction) * position_changes[index]
        return images - direction, LBFGSState(images, gradient, position_changes, gradient_changes, weights,
                                               scale, state.iterations + 1)

    def state_shapes(self, images_shape: tf.TensorShape) -> "LBFGSState":
        """The shapes of a state for images of `images_shape` (a loop's shape invariants)."""
        history = tf.TensorShape([self.history_size]).concatenate(images_shape)
        batch = images_shape[:1]
        return LBFGSState(images_shape, images_shape, history, history,
                          tf.TensorShape([self.history_size]).concatenate(batch), batch, tf.TensorShape([]))


class LBFGSState(NamedTuple):
    """L-BFGS's memory: the last iterate and its gradient, float32 [B, H, W, 3] each; the last `history_size`
    changes of position and of gradient, [history_size, B, H, W, 3] each, oldest first, with their weights
    1 / (s.y), [history_size, B] (0: no pair); the initial inverse Hessian's scale, [B] (0: none yet); and the
    steps so far, int64 []."""

    previous_images: tf.Tensor
    previous_gradient: tf.Tensor
    position_changes: tf.Tensor
    gradient_changes: tf.Tensor
    pair_weights: tf.Tensor
    scale: tf.Tensor
    iterations: tf.Tensor


def optimizer_named(name: str, learning_rate: float):
    """The optimizer `name` (one of `config.OPTIMIZERS`) whose step size is `learning_rate` grey levels: Adam's
    learning rate, or the size of L-BFGS's steps before it knows the curvature."""
    return {"adam": Adam, "lbfgs": LBFGS}[name](learning_rate)


def _per_image_dot(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """The dot product of each image of `a` with its image of `b`, [B]."""
    return tf.reduce_sum(a * b, axis=[1, 2, 3])


def _per_pixel(values: tf.Tensor) -> tf.Tensor:
    """[B] values broadcast over [B, H, W, 3] images."""
    return values[:, tf.newaxis, tf.newaxis, tf.newaxis]


class LevelState(NamedTuple):
    """What a level's loop carries: the iterate and the moving average, float32 [B, H, W, 3], and the
    optimizer's state (`AdamState` or `LBFGSState`)."""

    images: tf.Tensor
    average: tf.Tensor
    optimizer_state: tuple


def start_level(images: tf.Tensor, optimizer_state: tuple) -> LevelState:
    """A level's state before its first step: the start `images`, an empty average, and `optimizer_state`."""
    return LevelState(images, tf.zeros_like(images), optimizer_state)


def step(state: LevelState, gradient: tf.Tensor, optimizer, average_decay: float) -> LevelState:
    """One step: the `optimizer`'s update of the image by `gradient` [B, H, W, 3], the clip, and the moving
    average."""
    images, optimizer_state = optimizer.update(state.images, state.optimizer_state, gradient)
    # Pixel values outside [0, 255] cannot be saved; clipping keeps the optimizer inside the valid range.
    images = tf.clip_by_value(images, 0.0, 255.0)
    average = average_decay * state.average + (1.0 - average_decay) * images
    return LevelState(images, average, optimizer_state)


def output_decay(optimizer, average_decay: float) -> float:
    """The moving average's decay for `optimizer`: `average_decay` for one that jitters (Adam), 0 (the last
    iterate) for one that converges (L-BFGS)."""
    return average_decay if optimizer.averages else 0.0


def result(state: LevelState, steps_done, average_decay: float) -> tf.Tensor:
    """A level's output after `steps_done` steps (an int or an integer tensor): the bias-corrected moving
    average of the iterates, or the last iterate without averaging or before any step.

    Adam keeps jittering pixels by about the learning rate; the average removes that noise.
    """
    if average_decay == 0.0:
        return state.images
    steps_done = tf.cast(steps_done, tf.float64)
    correction = tf.cast(1.0 - tf.pow(tf.constant(average_decay, tf.float64), steps_done), tf.float32)
    return tf.where(steps_done > 0, tf.clip_by_value(state.average / tf.maximum(correction, 1e-30), 0.0, 255.0),
                    state.images)


def run_steps(state: LevelState, num_steps, losses_and_gradient: Callable, optimizer, average_decay: float,
              loss_names) -> tuple:
    """`num_steps` steps in a `tf.while_loop` (the served graph): (the final LevelState, {name: [B]} the losses
    of the last step).

    Args:
        losses_and_gradient: images [B, H, W, 3] -> ({name: [B]} weighted losses, the gradient of their total).
        loss_names: the keys of the losses.
    """
    # Any size: a level's images keep their batch but not their size, which a served request chooses.
    any_images = tf.TensorShape([state.images.shape[0], None, None, 3])

    def body(index, state, losses):
        losses, gradient = losses_and_gradient(state.images)
        return index + 1, step(state, gradient, optimizer, average_decay), losses

    _, state, losses = tf.while_loop(
        lambda index, *_: index < num_steps, body,
        (tf.constant(0), state, no_losses(loss_names, tf.shape(state.images)[0])),
        shape_invariants=(tf.TensorShape([]),
                          LevelState(any_images, any_images, optimizer.state_shapes(any_images)),
                          any_losses(loss_names)),
        parallel_iterations=1)
    return state, losses


def no_losses(loss_names, batch_size) -> dict:
    """{name: zeros [batch_size]}, the losses a loop carries before its first step."""
    return {name: tf.zeros([batch_size]) for name in loss_names}


def any_losses(loss_names) -> dict:
    """A loop's shape invariants of the losses: [B] each, which TensorFlow cannot infer through their reductions
    over a dynamic rank."""
    return {name: tf.TensorShape(None) for name in loss_names}
