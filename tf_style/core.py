"""The one optimization loop of a stylization, as tensor code: Adam on the image, the clip to [0, 255], the
moving average of the iterates, and Adam's state carried from one level of the pyramid to the next.

Both runners call these functions: the library (`tf_style.optimize.Optimization`) keeps the state in
`tf.Variable`s and calls `step` from a traced train step, one step at a time, so that its callbacks can report
between steps; the served stylizer (`tf_style.export_stylizer`) calls `run_steps`, whose `tf.while_loop` calls
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


class AdamState(NamedTuple):
    """Adam's moments of the image, float32 [B, H, W, 3] each, and its steps so far, int64 []."""

    first_moment: tf.Tensor
    second_moment: tf.Tensor
    iterations: tf.Tensor


class LevelState(NamedTuple):
    """What a level's loop carries: the iterate and the moving average, float32 [B, H, W, 3], and Adam's state."""

    images: tf.Tensor
    average: tf.Tensor
    adam: AdamState


def fresh_adam_state(images: tf.Tensor) -> AdamState:
    """Adam before its first step: zero moments shaped like `images`, no iterations."""
    return AdamState(tf.zeros_like(images), tf.zeros_like(images), tf.constant(0, tf.int64))


def start_level(images: tf.Tensor, adam_state: AdamState) -> LevelState:
    """A level's state before its first step: the start `images`, an empty average, and `adam_state`."""
    return LevelState(images, tf.zeros_like(images), adam_state)


def upsampled_adam_state(adam_state: AdamState, height, width) -> AdamState:
    """Adam's state carried to a larger level of height x width (the sizes may be scalar tensors).

    A fresh Adam moves every pixel by about the learning rate on its first steps whatever the gradient, which
    adds noise at the start of each level. Carrying the moments (and the step count, so that the bias
    corrections stay small) continues the optimization instead. All loss terms are means over positions, so a
    pixel's gradient shrinks with the number of pixels: the first moment is scaled by the ratio of pixel counts
    and the second by its square, which keeps Adam's step size.
    """
    first_moment, second_moment, iterations = adam_state
    ratio = (tf.cast(tf.shape(first_moment)[1] * tf.shape(first_moment)[2], tf.float64)
             / tf.cast(height * width, tf.float64))
    size = tf.stack([height, width])
    first_moment = tf.cast(ratio, tf.float32) * tf.image.resize(first_moment, size, method="bicubic")
    # Bilinear, and clipped at 0: the second moment must stay non-negative.
    second_moment = tf.cast(ratio ** 2, tf.float32) * tf.nn.relu(tf.image.resize(second_moment, size,
                                                                                 method="bilinear"))
    return AdamState(first_moment, second_moment, iterations)


def step(state: LevelState, gradient: tf.Tensor, adam: Adam, average_decay: float) -> LevelState:
    """One step: Adam's update of the image by `gradient` [B, H, W, 3], the clip, and the moving average.

    Adam is Keras 3's `Adam.update_step`, term for term.
    """
    first_moment, second_moment, iterations = state.adam
    local_step = tf.cast(iterations + 1, tf.float32)
    beta_1_power = tf.pow(tf.constant(adam.beta_1, tf.float32), local_step)
    beta_2_power = tf.pow(tf.constant(adam.beta_2, tf.float32), local_step)
    alpha = tf.constant(adam.learning_rate, tf.float32) * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
    first_moment = first_moment + (gradient - first_moment) * (1 - adam.beta_1)
    second_moment = second_moment + (tf.square(gradient) - second_moment) * (1 - adam.beta_2)
    images = state.images - (first_moment * alpha) / (tf.sqrt(second_moment) + adam.epsilon)
    # Pixel values outside [0, 255] cannot be saved; clipping keeps Adam inside the valid range.
    images = tf.clip_by_value(images, 0.0, 255.0)
    average = average_decay * state.average + (1.0 - average_decay) * images
    return LevelState(images, average, AdamState(first_moment, second_moment, iterations + 1))


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


def run_steps(state: LevelState, num_steps, losses_and_gradient: Callable, adam: Adam, average_decay: float,
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
        return index + 1, step(state, gradient, adam, average_decay), losses

    _, state, losses = tf.while_loop(
        lambda index, *_: index < num_steps, body,
        (tf.constant(0), state, no_losses(loss_names, tf.shape(state.images)[0])),
        shape_invariants=(tf.TensorShape([]),
                          LevelState(any_images, any_images, AdamState(any_images, any_images, tf.TensorShape([]))),
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
