"""The optimization core: Adam as Keras runs it, L-BFGS, the moving average, and the served loop equal to the
library's."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_style.optimization import core


def _gradients(count: int, shape=(1, 6, 5, 3)) -> list:
    return [tf.random.stateless_normal(shape, seed=[index, 1]) * 3.0 for index in range(count)]


def test_a_step_is_keras_adam_then_the_clip():
    start = tf.random.stateless_uniform((1, 6, 5, 3), seed=[1, 2], minval=0.0, maxval=255.0)
    image = tf.Variable(start)
    optimizer = keras.optimizers.Adam(learning_rate=3.0, beta_2=0.99)
    state = core.start_level(start, core.Adam(3.0).fresh_state(start))
    for gradient in _gradients(5):
        optimizer.apply_gradients([(gradient, image)])
        image.assign(tf.clip_by_value(image, 0.0, 255.0))
        state = core.step(state, gradient, core.Adam(3.0), 0.9)
    np.testing.assert_array_equal(state.images.numpy(), image.numpy())
    assert int(state.optimizer_state.iterations) == 5


def test_the_result_is_the_bias_corrected_average():
    images = [tf.fill((1, 2, 2, 3), value) for value in (10.0, 20.0, 40.0)]
    state = core.start_level(images[0], core.Adam(1.0).fresh_state(images[0]))
    np.testing.assert_array_equal(core.result(state, 0, 0.5).numpy(), images[0].numpy())  # no step: the start
    for image in images:
        state = core.LevelState(image, 0.5 * state.average + 0.5 * image, state.optimizer_state)
    # Weights 1/8, 1/4, 1/2 of the three iterates, divided by their sum 7/8.
    np.testing.assert_allclose(core.result(state, 3, 0.5).numpy(), (10 / 8 + 20 / 4 + 40 / 2) / (7 / 8), rtol=1e-6)
    np.testing.assert_array_equal(core.result(state, 3, 0.0).numpy(), images[-1].numpy())


@pytest.mark.parametrize("optimizer", [core.Adam(2.0), core.LBFGS(2.0, history_size=3)])
def test_the_served_loop_takes_the_steps_the_library_takes(optimizer):
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

    one_by_one = core.start_level(start, optimizer.fresh_state(start))
    for _ in range(7):
        _, gradient = losses_and_gradient(one_by_one.images)
        one_by_one = core.step(one_by_one, gradient, optimizer, 0.8)
    looped, losses = tf.function(lambda: core.run_steps(core.start_level(start, optimizer.fresh_state(start)), 7,
                                                         losses_and_gradient, optimizer, 0.8, ("fit", "total")))()
    np.testing.assert_array_equal(looped.images.numpy(), one_by_one.images.numpy())
    np.testing.assert_array_equal(core.result(looped, 7, 0.8).numpy(), core.result(one_by_one, 7, 0.8).numpy())
    assert set(losses) == {"fit", "total"}


def test_adams_state_moves_up_a_level_rescaled():
    state = core.AdamState(tf.fill((1, 4, 6, 3), 0.5), tf.fill((1, 4, 6, 3), 0.25), tf.constant(7, tf.int64))
    moved = core.Adam(1.0).carried_up(state, 8, 12)
    np.testing.assert_allclose(moved.first_moment.numpy(), np.full((1, 8, 12, 3), 0.5 / 4), rtol=1e-6)
    np.testing.assert_allclose(moved.second_moment.numpy(), np.full((1, 8, 12, 3), 0.25 / 16), rtol=1e-6)
    assert int(moved.iterations) == 7


def _quadratic(target: tf.Tensor, curvatures: tf.Tensor):
    """losses_and_gradient of sum(curvatures * (images - target)^2) / 2 per image: an ill-conditioned bowl."""
    def losses_and_gradient(images):
        loss = 0.5 * tf.reduce_sum(curvatures * tf.square(images - target), axis=[1, 2, 3])
        return {"total": loss}, curvatures * (images - target)
    return losses_and_gradient


def _run(optimizer, start, losses_and_gradient, num_steps: int) -> core.LevelState:
    state = core.start_level(start, optimizer.fresh_state(start))
    for _ in range(num_steps):
        state = core.step(state, losses_and_gradient(state.images)[1], optimizer, 0.0)
    return state


def test_lbfgs_finds_the_bottom_of_an_ill_conditioned_bowl_where_adam_is_still_on_its_way():
    """Curvatures spread over two orders of magnitude: gradient-scaled steps crawl along the flat directions;
    L-BFGS learns the curvature from its history and lands in the bottom."""
    target = tf.random.stateless_uniform((2, 4, 5, 3), seed=[5, 6], minval=60.0, maxval=200.0)
    curvatures = tf.exp(tf.random.stateless_uniform((2, 4, 5, 3), seed=[7, 8], minval=0.0, maxval=4.6))
    fit = _quadratic(target, curvatures)
    start = tf.fill((2, 4, 5, 3), 128.0)
    lbfgs = _run(core.LBFGS(2.0), start, fit, 40)
    adam = _run(core.Adam(2.0), start, fit, 40)
    start_loss = fit(start)[0]["total"].numpy()
    assert (fit(lbfgs.images)[0]["total"].numpy() < 1e-4 * start_loss).all()
    assert (fit(adam.images)[0]["total"].numpy() > 100 * fit(lbfgs.images)[0]["total"].numpy()).all()


def test_lbfgs_first_step_is_a_gradient_step_of_the_given_size():
    start = tf.fill((1, 4, 4, 3), 100.0)
    gradient = tf.random.stateless_normal((1, 4, 4, 3), seed=[1, 1])
    lbfgs = core.LBFGS(3.0)
    moved = core.step(core.start_level(start, lbfgs.fresh_state(start)), gradient, lbfgs, 0.0).images - start
    np.testing.assert_allclose(np.sqrt(np.mean(np.square(moved.numpy()))), 3.0, rtol=1e-4)
    # Along the gradient, downhill: the same negative multiple of it at every pixel (to float32's rounding at 100).
    ratio = moved.numpy() / gradient.numpy()
    assert (ratio < 0).all()
    np.testing.assert_allclose(ratio, np.median(ratio), rtol=1e-3)


def test_lbfgs_images_of_a_batch_follow_the_paths_they_follow_alone():
    target = tf.random.stateless_uniform((2, 4, 5, 3), seed=[9, 6], minval=0.0, maxval=255.0)
    curvatures = tf.exp(tf.random.stateless_uniform((2, 4, 5, 3), seed=[9, 8], minval=0.0, maxval=3.0))
    start = tf.random.stateless_uniform((2, 4, 5, 3), seed=[9, 9], minval=0.0, maxval=255.0)
    together = _run(core.LBFGS(4.0), start, _quadratic(target, curvatures), 12).images
    for index in range(2):
        alone = _run(core.LBFGS(4.0), start[index:index + 1],
                     _quadratic(target[index:index + 1], curvatures[index:index + 1]), 12).images
        np.testing.assert_allclose(together[index:index + 1].numpy(), alone.numpy(), rtol=1e-5, atol=1e-3)


def test_lbfgs_starts_each_level_afresh():
    lbfgs = core.LBFGS(2.0, history_size=4)
    start = tf.fill((1, 4, 6, 3), 10.0)
    state = _run(lbfgs, start, _quadratic(tf.fill((1, 4, 6, 3), 50.0), tf.ones((1, 4, 6, 3))), 3).optimizer_state
    moved = lbfgs.carried_up(state, 8, 12)
    assert moved.position_changes.shape == (4, 1, 8, 12, 3) and int(moved.iterations) == 0
    assert not np.any(moved.pair_weights.numpy()) and not np.any(moved.scale.numpy())
