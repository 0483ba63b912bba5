"""The convolutions on either of TensorFlow's kernels: the same activations and gradients, and the plan's choice."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import gradient_image, stripes_image
from tf_style.config import StyleConfig
from tf_style.network import convolution, device
from tf_style.network.features import extractor_for
from tf_style.objective.targets import compute_targets
from tf_style.objective.terms import objective_for


@pytest.mark.parametrize("way", [convolution.FORWARD_KERNEL, convolution.BACKWARD_KERNEL])
@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_the_outputs_and_input_gradient_are_tensorflows(padding, way):
    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(size=(2, 9, 11, 5)), tf.float32)
    kernel = tf.constant(rng.normal(size=(3, 3, 5, 7)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(images)
        ours = convolution.conv2d(images, kernel, padding, way)
        theirs = tf.nn.conv2d(images, kernel, 1, padding)
        weights = tf.constant(rng.normal(size=ours.shape), tf.float32)  # a loss that weights every output
        ours_loss, theirs_loss = tf.reduce_sum(ours * weights), tf.reduce_sum(theirs * weights)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-5)
    ours_gradient, theirs_gradient = tape.gradient(ours_loss, images), tape.gradient(theirs_loss, images)
    assert ours_gradient.shape == images.shape
    np.testing.assert_allclose(ours_gradient.numpy(), theirs_gradient.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padding", ["replicate", "zero"])
def test_the_steps_gradient_equals_the_plain_tensorflow_gradient(padding):
    config = StyleConfig(size=64, padding=padding)
    gradients = {}
    for way in convolution.KERNELS:
        extractor = extractor_for(config, "float32", convolution.KernelPlan(way, way))
        targets = compute_targets(extractor, gradient_image(48, 64), stripes_image(64, 64), config)
        image = tf.Variable(stripes_image(48, 64)[None])
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(objective_for(config).losses(extractor, image, targets)["total"])
        gradients[way] = tape.gradient(total, image).numpy()
    native = gradients[convolution.NATIVE]
    assert np.abs(native).max() > 0
    for way in (convolution.FORWARD_KERNEL, convolution.BACKWARD_KERNEL):
        # 1e-5 of the gradient's scale: float32 rounding of two orders of summation.
        np.testing.assert_allclose(gradients[way], native, rtol=0, atol=1e-5 * np.abs(native).max())


def test_the_plan_takes_the_ways_measured_fastest_and_keeps_them(monkeypatch, tmp_path):
    cache = str(tmp_path / "cache" / "convolution_kernels.json")
    probes = []

    def timings(dtype, shapes, num_steps=3):
        probes.append(dtype)
        first_layer = shapes[0][3] == 3
        return {convolution.NATIVE: 1.0, convolution.FORWARD_KERNEL: measured[dtype, first_layer],
                convolution.BACKWARD_KERNEL: 0.7 if first_layer else 2.0}

    # (dtype, first layer): the forward kernel's time. float32: twice as fast in the others, and beats the
    # backward kernel's 0.7 in the first; bfloat16: within the margin in the others.
    measured = {("float32", False): 0.5, ("float32", True): 0.6, ("bfloat16", False): 0.95, ("bfloat16", True): 3.0}
    monkeypatch.setattr(convolution, "time_kernels", timings)
    assert device.measured_kernel_plan("float32", cache) == convolution.KernelPlan(convolution.FORWARD_KERNEL,
                                                                                   convolution.FORWARD_KERNEL)
    assert device.measured_kernel_plan("bfloat16", cache) == convolution.KernelPlan(convolution.BACKWARD_KERNEL,
                                                                                    convolution.NATIVE)
    measured["float32", False] = 2.0  # kept: every run on the machine computes the same numbers
    assert device.measured_kernel_plan("float32", cache).rest == convolution.FORWARD_KERNEL
    assert probes == ["float32"] * 2 + ["bfloat16"] * 2
    (tmp_path / "a_file").write_text("")  # a cache that cannot be written: measured, and no error
    assert device.measured_kernel_plan("float32", str(tmp_path / "a_file" / "x.json")).rest == convolution.NATIVE
    assert probes == ["float32"] * 2 + ["bfloat16"] * 2 + ["float32"] * 2


def test_the_plan_names_its_kernels_and_the_network_runs_them(monkeypatch):
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind: [])
    kernels = convolution.KernelPlan(convolution.NATIVE, convolution.BACKWARD_KERNEL)
    monkeypatch.setattr(device, "measured_kernel_plan", lambda dtype: kernels)
    plan = device.plan_compute("float32")
    assert plan.conv_kernels == kernels
    assert "forward passes as transposed convolutions in the others (measured faster here)" in plan.reason
    assert device.plan_compute("float32", "true").conv_kernels == convolution.KernelPlan()  # XLA: not measured
    ways = {layer.name: layer.way for layer in extractor_for(StyleConfig(), "float32", kernels).model.layers
            if isinstance(layer, convolution.Conv2DOnKernels)}
    assert ways.pop("block1_conv1") == convolution.NATIVE
    assert set(ways.values()) == {convolution.BACKWARD_KERNEL} and len(ways) == 12  # through block5_conv1 in VGG19


def test_the_probe_times_every_way():
    seconds = convolution.time_kernels("float32", [(1, 8, 8, 4, 6), (1, 4, 4, 6, 6)], num_steps=1)
    assert set(seconds) == set(convolution.KERNELS) and all(value > 0 for value in seconds.values())
