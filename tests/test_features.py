"""The VGG extractor: layers, shapes, truncation, preprocessing, and the network the weights decide."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_style.config import StyleConfig
from tf_style.errors import UsageError
from tf_style.network import features, vgg, weights


def network(layers, dtype_policy: str = "float32", **options):
    """The network `stylize()` builds for these layers and options (StyleConfig fields)."""
    return features.extractor_for(StyleConfig(content_layers=layers, style_layers=layers, **options), dtype_policy)


@pytest.fixture(scope="module")
def hed_weights():
    return weights.load("hed")


def test_returns_the_asked_layers_with_their_shapes():
    extractor = network(["block1_conv1", "block3_conv2", "block4_conv2"])
    outputs = extractor(tf.zeros([2, 64, 48, 3]))
    assert {name: tuple(value.shape) for name, value in outputs.items()} == {
        "block1_conv1": (2, 64, 48, 64), "block3_conv2": (2, 16, 12, 256), "block4_conv2": (2, 8, 6, 512)}
    assert all(value.dtype == tf.float32 for value in outputs.values())


def test_the_weights_choose_the_network():
    deep = ["block5_conv1"]
    names = lambda extractor: [layer.name for layer in extractor.model.layers  # noqa: E731
                               if isinstance(layer, keras.layers.Conv2D)]
    assert names(network(deep, weights="hed")) == list(vgg.VGG16.conv_layers[:11])
    assert names(network(deep)) == list(vgg.VGG19.conv_layers[:13])  # ImageNet's VGG19, the default
    assert "block4_conv4" in names(network(deep))


def test_a_vgg19_layer_with_vgg16_weights_is_a_usage_error():
    with pytest.raises(UsageError, match="block3_conv4 is not a layer of VGG16"):
        StyleConfig(style_layers=("block3_conv4",), weights="hed")


def test_network_stops_at_the_deepest_layer_in_use():
    extractor = network(["block2_conv1", "block1_conv2"])
    conv_layers = [layer.name for layer in extractor.model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert conv_layers == ["block1_conv1", "block1_conv2", "block2_conv1"]


def test_layers_get_the_files_weights(hed_weights):
    extractor = network(["block2_conv2"], weights="hed")
    kernel, bias = extractor.model.get_layer("block2_conv2").get_weights()
    np.testing.assert_array_equal(kernel, hed_weights["block2_conv2"][0])
    np.testing.assert_array_equal(bias, hed_weights["block2_conv2"][1])


def test_caffe_preprocessing_matches_keras():
    images = tf.random.stateless_uniform([1, 4, 4, 3], seed=[1, 1], maxval=255.0)
    expected = keras.applications.vgg19.preprocess_input(images.numpy().copy())
    np.testing.assert_allclose(features.caffe_preprocess(images).numpy(), expected, rtol=1e-5, atol=1e-4)


def test_average_pooling_changes_deep_features():
    images = tf.random.stateless_uniform([1, 32, 32, 3], seed=[2, 2], maxval=255.0)
    with_max = network(["block3_conv1"], pooling="max")(images)["block3_conv1"]
    with_avg = network(["block3_conv1"], pooling="avg")(images)["block3_conv1"]
    assert with_max.shape == with_avg.shape
    assert not np.allclose(with_max.numpy(), with_avg.numpy())


def test_bfloat16_policy_runs_convolutions_in_bfloat16_and_returns_float32():
    extractor = network(["block1_conv2"], "mixed_bfloat16")
    assert extractor.compute_dtype == "bfloat16"
    output = extractor(tf.fill([1, 16, 16, 3], 100.0))["block1_conv2"]
    reference = network(["block1_conv2"])(tf.fill([1, 16, 16, 3], 100.0))["block1_conv2"]
    assert output.dtype == tf.float32
    np.testing.assert_allclose(output.numpy(), reference.numpy(), rtol=0.05, atol=0.5)


@pytest.mark.parametrize("padding", ["replicate", "reflect"])
def test_edge_padding_keeps_shapes_down_to_one_pixel_maps(padding):
    extractor = network(["block5_conv1"], padding=padding)
    assert extractor(tf.fill([1, 16, 20, 3], 90.0))["block5_conv1"].shape == (1, 1, 1, 512)
    assert extractor(tf.fill([1, 40, 24, 3], 90.0))["block5_conv1"].shape == (1, 2, 1, 512)


def test_edge_padding_replicates_or_reflects_the_border():
    row = tf.constant([[[[1.0], [2.0], [3.0]]]])  # [1, 1, 3, 1]
    image = tf.tile(row, [1, 3, 1, 1])
    replicated = features.EdgePadding("replicate")(image)[0, 1, :, 0].numpy()
    reflected = features.EdgePadding("reflect")(image)[0, 1, :, 0].numpy()
    np.testing.assert_array_equal(replicated, [1, 1, 2, 3, 3])
    np.testing.assert_array_equal(reflected, [2, 1, 2, 3, 2])


def test_replicate_padding_and_its_gradient_are_tensorflows_symmetric_padding():
    images = tf.random.stateless_normal([2, 5, 4, 3], seed=[5, 5])
    weights = tf.random.stateless_normal([2, 7, 6, 3], seed=[6, 6])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(images)
        ours = features.replicate_padded(images)
        theirs = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
        ours_loss, theirs_loss = tf.reduce_sum(ours * weights), tf.reduce_sum(theirs * weights)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(tape.gradient(ours_loss, images).numpy(), tape.gradient(theirs_loss, images).numpy())
