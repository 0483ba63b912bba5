"""The convolutions whose input gradient is a forward convolution: the same activations and gradients."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import gradient_image, stripes_image
from tf_style import convolution, device
from tf_style.config import StyleConfig
from tf_style.features import extractor_for
from tf_style.targets import compute_targets, weighted_losses


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_the_input_gradient_is_tensorflows(padding):
    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(size=(2, 9, 11, 5)), tf.float32)
    kernel = tf.constant(rng.normal(size=(3, 3, 5, 7)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(images)
        ours = convolution.conv2d_with_forward_input_gradient(images, kernel, padding)
        theirs = tf.nn.conv2d(images, kernel, 1, padding)
        weights = tf.constant(rng.normal(size=ours.shape), tf.float32)  # a loss that weights every output
        ours_loss, theirs_loss = tf.reduce_sum(ours * weights), tf.reduce_sum(theirs * weights)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    ours_gradient, theirs_gradient = tape.gradient(ours_loss, images), tape.gradient(theirs_loss, images)
    assert ours_gradient.shape == images.shape
    np.testing.assert_allclose(ours_gradient.numpy(), theirs_gradient.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padding", ["replicate", "zero"])
def test_the_steps_gradient_equals_the_plain_tensorflow_gradient(padding):
    config = StyleConfig(size=64, padding=padding)
    gradients = {}
    for input_gradient in convolution.INPUT_GRADIENTS:
        extractor = extractor_for(config, "float32", input_gradient)
        targets = compute_targets(extractor, gradient_image(48, 64), stripes_image(64, 64), config)
        image = tf.Variable(stripes_image(48, 64)[None])
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(weighted_losses(extractor, image, targets, config)["total"])
        gradients[input_gradient] = tape.gradient(total, image).numpy()
    native, forward = gradients[convolution.NATIVE], gradients[convolution.FORWARD_CONVOLUTION]
    assert np.abs(native).max() > 0
    # 1e-5 of the gradient's scale: float32 rounding of two orders of summation.
    np.testing.assert_allclose(forward, native, rtol=0, atol=1e-5 * np.abs(native).max())


def test_the_plan_takes_the_input_gradient_measured_faster_and_keeps_the_choice(monkeypatch, tmp_path):
    cache = str(tmp_path / "cache" / "input_gradient.json")
    probes = []

    def timings(dtype):
        probes.append(dtype)
        return {convolution.NATIVE: 1.0, convolution.FORWARD_CONVOLUTION: measured[dtype]}

    measured = {"float32": 0.5, "bfloat16": 0.95}  # forward: twice as fast; within the margin
    monkeypatch.setattr(convolution, "time_input_gradients", timings)
    assert device.measured_input_gradient("float32", cache) == convolution.FORWARD_CONVOLUTION
    assert device.measured_input_gradient("bfloat16", cache) == convolution.NATIVE
    measured["float32"] = 2.0  # kept: every run on the machine computes the same numbers
    assert device.measured_input_gradient("float32", cache) == convolution.FORWARD_CONVOLUTION
    assert probes == ["float32", "bfloat16"]
    (tmp_path / "a_file").write_text("")  # a cache that cannot be written: measured, and no error
    assert device.measured_input_gradient("float32", str(tmp_path / "a_file" / "x.json")) == convolution.NATIVE
    assert probes == ["float32", "bfloat16", "float32"]


def test_the_plan_names_its_input_gradient(monkeypatch):
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind: [])
    monkeypatch.setattr(device, "measured_input_gradient", lambda dtype: convolution.FORWARD_CONVOLUTION)
    plan = device.plan_compute("float32")
    assert plan.conv_input_gradient == convolution.FORWARD_CONVOLUTION and "forward convolutions" in plan.reason
    assert device.plan_compute("float32", "true").conv_input_gradient == convolution.NATIVE  # XLA: not measured


def test_the_probe_times_both_ways():
    seconds = convolution.time_input_gradients("float32", shape=(1, 8, 8, 4), num_steps=1)
    assert set(seconds) == set(convolution.INPUT_GRADIENTS) and all(value > 0 for value in seconds.values())
