"""The optimization core: Adam as Keras runs it, the moving average, and the served loop equal to the library's."""

import keras
import numpy as np
import tensorflow as tf

from tf_style import core


def _gradients(count: int, shape=(1, 6, 5, 3)) -> list:
    return [tf.random.stateless_normal(shape, seed=[index, 1]) * 3.0 for index in range(count)]


def test_a_step_is_keras_adam_then_the_clip():
    start = tf.random.stateless_uniform((1, 6, 5, 3), seed=[1, 2], minval=0.0, maxval=255.0)
    image = tf.Variable(start)
    optimizer = keras.optimizers.Adam(learning_rate=3.0, beta_2=0.99)
    state = core.start_level(start, core.fresh_adam_state(start))
    for gradient in _gradients(5):
        optimizer.apply_gradients([(gradient, image)])
        image.assign(tf.clip_by_value(image, 0.0, 255.0))
        state = core.step(state, gradient, core.Adam(3.0), 0.9)
    np.testing.assert_array_equal(state.images.numpy(), image.numpy())
    assert int(state.adam.iterations) == 5


def test_the_result_is_the_bias_corrected_average():
    images = [tf.fill((1, 2, 2, 3), value) for value in (10.0, 20.0, 40.0)]
    state = core.start_level(images[0], core.fresh_adam_state(images[0]))
    np.testing.assert_array_equal(core.result(state, 0, 0.5).numpy(), images[0].numpy())  # no step: the start
    for image in images:
        state = core.LevelState(image, 0.5 * state.average + 0.5 * image, state.adam)
    # Weights 1/8, 1/4, 1/2 of the three iterates, divided by their sum 7/8.
    np.testing.assert_allclose(core.result(state, 3, 0.5).numpy(), (10 / 8 + 20 / 4 + 40 / 2) / (7 / 8), rtol=1e-6)
    np.testing.assert_array_equal(core.result(state, 3, 0.0).numpy(), images[-1].numpy())


def test_the_served_loop_takes_the_steps_the_library_takes():
    """`run_steps` (a tf.while_loop, as in the SavedModel) and `step` called one at a time (as the library's
    train step calls it) give the same bits."""
    target = tf.random.stateless_uniform((1, 6, 5, 3), seed=[3, 4], minval=0.0, maxval=255.0)
    start = tf.fill((1, 6, 5, 3), 128.0)

    def losses_and_gradient(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            loss = tf.reduce_mean(tf.square(images - target), axis=[1, 2, 3])
            total = tf.reduce_sum(loss)
        return {"fit": loss, "total": loss}, tape.gradient(total, images)

    adam = core.Adam(2.0)
    one_by_one = core.start_level(start, core.fresh_adam_state(start))
    for _ in range(7):
        _, gradient = losses_and_gradient(one_by_one.images)
        one_by_one = core.step(one_by_one, gradient, adam, 0.8)
    looped, losses = tf.function(lambda: core.run_steps(core.start_level(start, core.fresh_adam_state(start)), 7,
                                                         losses_and_gradient, adam, 0.8, ("fit", "total")))()
    np.testing.assert_array_equal(looped.images.numpy(), one_by_one.images.numpy())
    np.testing.assert_array_equal(core.result(looped, 7, 0.8).numpy(), core.result(one_by_one, 7, 0.8).numpy())
    assert set(losses) == {"fit", "total"}


def test_adams_state_moves_up_a_level_rescaled():
    state = core.AdamState(tf.fill((1, 4, 6, 3), 0.5), tf.fill((1, 4, 6, 3), 0.25), tf.constant(7, tf.int64))
    moved = core.upsampled_adam_state(state, 8, 12)
    np.testing.assert_allclose(moved.first_moment.numpy(), np.full((1, 8, 12, 3), 0.5 / 4), rtol=1e-6)
    np.testing.assert_allclose(moved.second_moment.numpy(), np.full((1, 8, 12, 3), 0.25 / 16), rtol=1e-6)
    assert int(moved.iterations) == 7
