"""The loss math against hand-computed values, and its invariance to image size and feature scale."""

import numpy as np
import pytest
import tensorflow as tf

from tf_style.objective import losses


def test_gram_matrix_by_hand():
    # Two positions, two channels: features (1, 2) and (3, 4).
    features = tf.constant([[[[1.0, 2.0], [3.0, 4.0]]]])  # [1, 1, 2, 2]
    expected = np.array([[1 * 1 + 3 * 3, 1 * 2 + 3 * 4], [2 * 1 + 4 * 3, 2 * 2 + 4 * 4]]) / 2.0
    np.testing.assert_allclose(losses.gram_matrix(features)[0].numpy(), expected)


def test_gram_matrix_is_the_same_for_a_tiled_feature_map():
    # The same texture over four times the area must give the same Gram: that is what keeps the style
    # weight meaningful at every image size.
    features = tf.random.stateless_uniform([1, 5, 7, 8], seed=[1, 2])
    tiled = tf.tile(features, [1, 2, 2, 1])
    np.testing.assert_allclose(losses.gram_matrix(tiled).numpy(), losses.gram_matrix(features).numpy(),
                               rtol=1e-5)


def test_gram_matrix_gradient_is_tensorflows_of_the_plain_definition():
    # The Gram's own gradient against TensorFlow's autodiff of the einsum it stands for, under a loss whose
    # gradient with respect to the Gram is not symmetric, for a batch of two.
    features = tf.random.stateless_normal([2, 6, 5, 4], seed=[3, 4])
    weights = tf.random.stateless_normal([2, 4, 4], seed=[5, 6])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(features)
        ours = losses.gram_matrix(features)
        plain = tf.einsum("bhwc,bhwd->bcd", features, features) / 30.0
        ours_loss, plain_loss = tf.reduce_sum(ours * weights), tf.reduce_sum(plain * weights)
    np.testing.assert_allclose(ours.numpy(), plain.numpy(), rtol=1e-6)
    plain_gradient = tape.gradient(plain_loss, features).numpy()
    np.testing.assert_allclose(tape.gradient(ours_loss, features).numpy(), plain_gradient,
                               rtol=0, atol=1e-5 * np.abs(plain_gradient).max())


def test_normalized_squared_error_by_hand():
    value = tf.constant([[1.0, 2.0]])
    target = tf.constant([[2.0, 4.0]])
    # ((1-2)^2 + (2-4)^2) / (|1-2| + |2-4|) = 5 / 3
    np.testing.assert_allclose(losses.normalized_squared_error(value, target).numpy(), [5 / 3], rtol=1e-6)


def test_normalized_squared_error_gradient_ignores_the_scale_of_the_error():
    # Its gradient must not fade as the error shrinks (that is why it is used), nor grow with the scale of
    # the features: scaling value and target scales the loss by as much and leaves the gradient alone.
    value = tf.random.stateless_normal([2, 3, 3, 4], seed=[3, 4])
    target = tf.random.stateless_normal([2, 3, 3, 4], seed=[5, 6])

    def loss_and_gradient(scale):
        scaled_value = tf.Variable(scale * value)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(losses.normalized_squared_error(scaled_value, scale * target))
        return loss.numpy(), tape.gradient(loss, scaled_value).numpy()

    loss, gradient = loss_and_gradient(1.0)
    for scale in (0.01, 100.0):
        scaled_loss, scaled_gradient = loss_and_gradient(scale)
        np.testing.assert_allclose(scaled_loss, scale * loss, rtol=1e-4)
        np.testing.assert_allclose(scaled_gradient, gradient, rtol=1e-3, atol=1e-6)
    # Per image, the gradient's L1 norm is about 1.
    assert 0.5 < np.abs(gradient[0]).sum() < 1.5


def test_target_normalized_squared_error_by_hand():
    value = tf.constant([[1.0, 2.0]])
    target = tf.constant([[2.0, 4.0]])
    # ((1-2)^2 + (2-4)^2) / (|2| + |4|) = 5 / 6
    np.testing.assert_allclose(losses.target_normalized_squared_error(value, target).numpy(), [5 / 6], rtol=1e-6)


def _loss_and_gradient(error_function, value, target):
    variable = tf.Variable(value)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(error_function(variable, target))
    return loss.numpy(), tape.gradient(loss, variable).numpy()


def test_target_normalized_squared_error_pulls_harder_the_further_it_drifts():
    # The content term's pull must grow with the drift from the photo (so that the result settles where it
    # meets the style's pull), where the style term's stays the same.
    target = tf.random.stateless_uniform([1, 3, 3, 4], seed=[11, 12])
    direction = tf.random.stateless_normal([1, 3, 3, 4], seed=[13, 14])
    _, near = _loss_and_gradient(losses.target_normalized_squared_error, target + 0.01 * direction, target)
    _, far = _loss_and_gradient(losses.target_normalized_squared_error, target + 0.1 * direction, target)
    np.testing.assert_allclose(far, 10 * near, rtol=1e-4)
    _, near = _loss_and_gradient(losses.normalized_squared_error, target + 0.01 * direction, target)
    _, far = _loss_and_gradient(losses.normalized_squared_error, target + 0.1 * direction, target)
    np.testing.assert_allclose(far, near, rtol=1e-3, atol=1e-6)


def test_target_normalized_squared_error_ignores_the_scale_of_the_features():
    # Scaling features and target by s scales the loss by s and leaves its gradient alone, as for the
    # style term's form: the content weight means the same for features of any magnitude.
    value = tf.random.stateless_normal([2, 3, 3, 4], seed=[15, 16])
    target = tf.random.stateless_normal([2, 3, 3, 4], seed=[17, 18])
    loss, gradient = _loss_and_gradient(losses.target_normalized_squared_error, value, target)
    for scale in (0.01, 100.0):
        scaled_loss, scaled_gradient = _loss_and_gradient(
            losses.target_normalized_squared_error, scale * value, scale * target)
        np.testing.assert_allclose(scaled_loss, scale * loss, rtol=1e-4)
        np.testing.assert_allclose(scaled_gradient, gradient, rtol=1e-3, atol=1e-6)


def test_content_loss_averages_layers():
    features = {"a": tf.ones([1, 2, 2, 1]), "b": tf.zeros([1, 2, 2, 1])}
    targets = {"a": 2 * tf.ones([1, 2, 2, 1]), "b": tf.ones([1, 2, 2, 1])}
    # Every element differs by 1: sums of squares 4 over target sums 8 and 4, so 1/2 and 1, mean 3/4.
    np.testing.assert_allclose(losses.content_loss(features, targets).numpy(), [0.75], rtol=1e-6)


def test_style_loss_weights_layers():
    features = {"a": tf.ones([1, 2, 2, 1]), "b": tf.ones([1, 2, 2, 1])}
    # Gram of all-ones is [[1]]; against targets [[2]] and [[4]] the normalized errors are 1 and 9/3.
    targets = {"a": tf.constant([[[2.0]]]), "b": tf.constant([[[4.0]]])}
    loss = losses.style_loss(features, targets, {"a": 0.75, "b": 0.25})
    np.testing.assert_allclose(loss.numpy(), [0.75 * 1.0 + 0.25 * 3.0], rtol=1e-6)


def test_style_loss_is_size_invariant():
    style = tf.random.stateless_uniform([1, 6, 6, 4], seed=[7, 8])
    image = tf.random.stateless_uniform([1, 6, 6, 4], seed=[9, 10])
    target = {"a": losses.gram_matrix(style)}
    small = losses.style_loss({"a": image}, target, {"a": 1.0})
    large = losses.style_loss({"a": tf.tile(image, [1, 3, 3, 1])}, target, {"a": 1.0})
    np.testing.assert_allclose(large.numpy(), small.numpy(), rtol=1e-5)


def test_total_variation_by_hand():
    image = np.zeros([1, 2, 2, 3], np.float32)
    image[0, 0, 1, :] = 255.0  # one white pixel: two of four neighbour pairs differ by 1 (on [0, 1])
    # vertical pairs: (0,0)-(1,0) 0, (0,1)-(1,1) 1 -> mean 1/2; horizontal: row 0 differs, row 1 not -> 1/2
    np.testing.assert_allclose(losses.total_variation_loss(tf.constant(image)).numpy(), [1.0], rtol=1e-6)


def test_total_variation_and_its_gradient_are_those_of_neighbour_differences():
    images = tf.random.stateless_uniform([2, 5, 7, 3], seed=[11, 12], maxval=255.0)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(images)
        ours = losses.total_variation_loss(images)
        scaled = images / 255.0
        plain = (tf.reduce_mean(tf.square(scaled[:, 1:] - scaled[:, :-1]), axis=[1, 2, 3])
                 + tf.reduce_mean(tf.square(scaled[:, :, 1:] - scaled[:, :, :-1]), axis=[1, 2, 3]))
        ours_sum, plain_sum = tf.reduce_sum(ours), tf.reduce_sum(plain)
    np.testing.assert_allclose(ours.numpy(), plain.numpy(), rtol=1e-6)
    np.testing.assert_allclose(tape.gradient(ours_sum, images).numpy(), tape.gradient(plain_sum, images).numpy(),
                               rtol=1e-5, atol=1e-9)


def test_losses_are_per_image():
    images = tf.stack([tf.zeros([4, 4, 3]), 255 * tf.ones([4, 4, 3])])
    assert losses.total_variation_loss(images).shape == (2,)


@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float16])
def test_gram_matrix_is_float32_for_low_precision_features(dtype):
    features = tf.cast(tf.ones([1, 2, 2, 3]), dtype)
    assert losses.gram_matrix(features).dtype == tf.float32


def test_feature_covariance_by_hand():
    # Positions (0, 0) and (2, 4): mean (1, 2), covariance [[1, 2], [2, 4]].
    features = tf.constant([[[[0.0, 0.0], [2.0, 4.0]]]])
    mean = losses.feature_mean(features)
    covariance = losses.feature_covariance(features)
    np.testing.assert_allclose(mean.numpy(), [[1.0, 2.0]])
    np.testing.assert_allclose(covariance.numpy(), [[[1.0, 2.0], [2.0, 4.0]]], atol=1e-6)


def test_newton_schulz_square_root():
    random = tf.random.stateless_normal([2, 6, 6], seed=[1, 3])
    spd = tf.matmul(random, random, transpose_b=True) + 0.1 * tf.eye(6)
    root = losses.sqrtm_newton_schulz(spd, num_iterations=20)
    np.testing.assert_allclose(tf.matmul(root, root).numpy(), spd.numpy(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(losses.sqrtm_eigh(spd).numpy(), root.numpy(), rtol=1e-3, atol=1e-3)


def test_eigh_square_root_of_a_rank_deficient_covariance():
    features = tf.random.stateless_normal([1, 2, 2, 8], seed=[2, 9])  # 4 positions, 8 channels: rank <= 3
    covariance = losses.feature_covariance(features)
    root = losses.sqrtm_eigh(covariance)
    assert np.isfinite(root.numpy()).all()
    np.testing.assert_allclose(tf.matmul(root, root).numpy(), covariance.numpy(), atol=1e-4)


def _wasserstein(image_features, style_features):
    target_mean = losses.feature_mean(style_features)
    root = losses.sqrtm_eigh(losses.feature_covariance(style_features))
    return losses.wasserstein_style_loss({"a": image_features}, {"a": target_mean}, {"a": root}, {"a": 1.0})


def test_wasserstein_is_zero_for_the_same_statistics_and_positive_otherwise():
    style = tf.random.stateless_normal([1, 8, 8, 4], seed=[4, 5]) + 2.0
    different = _wasserstein(style * 0.5, style).numpy()[0]
    assert different > 0.1
    # The iterative square root leaves a small residue where the statistics are the same.
    assert _wasserstein(style, style).numpy()[0] < 0.01 * different
    # Shuffled positions have the same statistics.
    shuffled = tf.reshape(tf.random.experimental.stateless_shuffle(tf.reshape(style, [64, 4]), seed=[1, 1]),
                          [1, 8, 8, 4])
    assert _wasserstein(shuffled, style).numpy()[0] < 0.01 * different


def test_wasserstein_matches_the_closed_form_for_a_mean_shift():
    # Same covariance, means differing by d: W2 = |d|, times the root of the target's second moment, per channel.
    style = tf.random.stateless_normal([1, 8, 8, 3], seed=[6, 7])
    shift = tf.constant([1.0, -2.0, 0.5])
    target_mean = losses.feature_mean(style)
    target_covariance = losses.feature_covariance(style)
    second_moment = tf.reduce_sum(target_mean ** 2) + tf.linalg.trace(target_covariance)[0]
    expected = tf.sqrt((1.0 + 4.0 + 0.25) * second_moment) / 3
    np.testing.assert_allclose(_wasserstein(style + shift, style).numpy(), [expected.numpy()], rtol=2e-3)


def test_palette_directions_are_unit_vectors_on_a_hemisphere_starting_with_grey():
    directions = losses.palette_directions(16).numpy()
    assert directions.shape == (16, 3)
    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(directions[0], [3 ** -0.5] * 3, rtol=1e-6)
    assert (directions @ np.ones(3) > 0).all()  # one of each opposite pair: the hemisphere around grey


def test_quantiles_by_hand():
    values = tf.constant([[0.0, 10.0, 20.0, 30.0]])
    # Four values at the midpoints of four quantiles are themselves; two midpoints (1/4 and 3/4) fall halfway
    # between the first two and the last two.
    np.testing.assert_allclose(losses.quantiles(values, 4).numpy(), values.numpy())
    np.testing.assert_allclose(losses.quantiles(values, 2).numpy(), [[5.0, 25.0]])
    # Eight midpoints: positions (i + 1/2) / 8 * 4 - 1/2, clipped to the ends.
    np.testing.assert_allclose(losses.quantiles(values, 8).numpy(),
                               [[0.0, 2.5, 7.5, 12.5, 17.5, 22.5, 27.5, 30.0]])


def test_the_transport_map_by_hand():
    # Source quantiles 0, 10, 20 go to 100, 200, 400; between them linearly, beyond them to the outermost.
    values = tf.constant([[[5.0, 15.0, -3.0, 25.0, 10.0]]])
    mapped = losses.transport_map(values, tf.constant([[[0.0, 10.0, 20.0]]]), tf.constant([[[100.0, 200.0, 400.0]]]))
    np.testing.assert_allclose(mapped.numpy(), [[[150.0, 300.0, 100.0, 400.0, 200.0]]])


def test_the_palette_loss_of_one_colour_against_another_by_hand():
    painting = tf.fill([1, 40, 60, 3], 1.0) * tf.constant([200.0, 40.0, 30.0])
    photo = tf.fill([2, 30, 20, 3], 1.0) * tf.constant([90.0, 100.0, 110.0])
    directions = losses.palette_directions(losses.PALETTE_DIRECTIONS).numpy()
    expected = np.mean((directions @ np.array([90.0 - 200.0, 100.0 - 40.0, 110.0 - 30.0])) ** 2)
    loss = losses.palette_loss(photo, losses.palette_quantiles(painting)).numpy()
    np.testing.assert_allclose(loss, [expected, expected], rtol=1e-5)


def test_the_palette_loss_sees_colours_not_where_they_are():
    # A painting's own pixels in another order, and the painting at another size, have its palette.
    painting = tf.random.stateless_uniform([1, 64, 48, 3], seed=[7, 8], maxval=255.0)
    shuffled = tf.reshape(tf.random.experimental.stateless_shuffle(tf.reshape(painting, [-1, 3]), seed=[9, 10]),
                          [1, 48, 64, 3])
    palette = losses.palette_quantiles(painting)
    mismatch = losses.palette_loss(painting * 0.5, palette)[0]
    assert losses.palette_loss(painting, palette)[0] < 1e-3 * mismatch
    assert losses.palette_loss(shuffled, palette)[0] < 1e-2 * mismatch
    larger = tf.image.resize(painting, [128, 96], method="nearest")
    assert losses.palette_loss(larger, palette)[0] < 1e-2 * mismatch


def test_the_palette_loss_of_a_large_image_is_measured_on_a_view_of_bounded_size():
    images = tf.random.stateless_uniform([1, 300, 1000, 3], seed=[1, 1], maxval=255.0)
    view = losses.palette_view(images, losses.PALETTE_LONG_SIDE)
    assert tuple(view.shape) == (1, 77, losses.PALETTE_LONG_SIDE, 3)
    small = tf.random.stateless_uniform([1, 30, 50, 3], seed=[1, 2], maxval=255.0)
    np.testing.assert_allclose(losses.palette_view(small, losses.PALETTE_LONG_SIDE).numpy(), small.numpy(),
                               atol=1e-4)


def test_the_palette_gradient_pulls_each_pixel_towards_the_colour_of_its_rank():
    # A grey ramp under a red palette: every pixel's gradient says "redder" (less of the loss with more red).
    ramp = tf.Variable(tf.tile(tf.linspace(50.0, 150.0, 32)[None, :, None, None], [1, 1, 32, 3]))
    red = tf.fill([1, 32, 32, 3], 1.0) * tf.constant([220.0, 30.0, 30.0])
    with tf.GradientTape() as tape:
        loss = losses.palette_loss(ramp, losses.palette_quantiles(red))
    gradient = tape.gradient(loss, ramp).numpy()
    assert (gradient[..., 0] < 0).all() and (gradient[..., 1] > 0).all() and (gradient[..., 2] > 0).all()
