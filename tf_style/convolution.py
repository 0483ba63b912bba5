"""VGG16's 3x3 convolutions with the input gradient computed by a forward convolution.

The gradient of a stride-1 convolution with respect to its input is itself a convolution: of the output
gradient, padded by the kernel's reach, with the kernel flipped in space and its input and output channels
swapped. Which of the two kernels is faster depends on the machine: TensorFlow's own (Conv2DBackpropInput) took
2.4x the forward convolution's time on one AVX2-only CPU (issue 15: 371 ms against 154 ms at 384x512, 64->64),
the same time on an AVX-512 BF16 CPU, and less with oneDNN held to AVX2 there. So the plan measures both on
the machine (`time_input_gradients`, via `device.plan_compute`) and takes the faster. The numbers are the same
up to float rounding (4e-7 relative in float32).

The network's weights are frozen: the kernel gets no gradient through this path.
"""

import statistics
import time

import keras
import tensorflow as tf

# How a plan computes a convolution's input gradient: TensorFlow's Conv2DBackpropInput, or a forward conv.
NATIVE = "native"
FORWARD_CONVOLUTION = "forward_convolution"
INPUT_GRADIENTS = (NATIVE, FORWARD_CONVOLUTION)


def input_gradient_kernel(kernel: tf.Tensor) -> tf.Tensor:
    """[kh, kw, C_in, C_out] -> [kh, kw, C_out, C_in], flipped in space: the kernel of the input gradient."""
    return tf.transpose(tf.reverse(kernel, axis=[0, 1]), [0, 1, 3, 2])


def input_gradient_by_forward_convolution(output_gradient: tf.Tensor, kernel: tf.Tensor, padding: str) -> tf.Tensor:
    """The gradient of a stride-1 `tf.nn.conv2d(inputs, kernel, 1, padding)` with respect to `inputs`.

    Args:
        output_gradient: [B, h, w, C_out], the gradient with respect to the convolution's output.
        kernel: [kh, kw, C_in, C_out], odd sides.
        padding: "VALID" or "SAME", as the convolution's.
    """
    flipped = input_gradient_kernel(kernel)
    if padding == "VALID":
        # Every input pixel reaches kh x kw outputs: pad the gradient by the kernel's reach.
        reach = [[0, 0], [kernel.shape[0] - 1] * 2, [kernel.shape[1] - 1] * 2, [0, 0]]
        return tf.nn.conv2d(tf.pad(output_gradient, reach), flipped, 1, "VALID")
    return tf.nn.conv2d(output_gradient, flipped, 1, "SAME")


def conv2d_with_forward_input_gradient(inputs: tf.Tensor, kernel: tf.Tensor, padding: str) -> tf.Tensor:
    """`tf.nn.conv2d(inputs, kernel, 1, padding)` whose input gradient is a forward convolution.

    Args:
        inputs: [B, H, W, C_in].
        kernel: [kh, kw, C_in, C_out], odd sides, a tensor (not a variable: it gets no gradient).
        padding: "VALID" or "SAME".
    """

    @tf.custom_gradient
    def convolve(images, weights):
        def gradient(output_gradient):
            return input_gradient_by_forward_convolution(output_gradient, weights, padding), None

        return tf.nn.conv2d(images, weights, 1, padding), gradient

    return convolve(inputs, kernel)


class Conv2DForwardInputGradient(keras.layers.Conv2D):
    """A stride-1 Keras Conv2D whose input gradient is a forward convolution (see the module docstring)."""

    def convolution_op(self, inputs, kernel):
        return conv2d_with_forward_input_gradient(inputs, tf.convert_to_tensor(kernel), self.padding.upper())


def time_input_gradients(compute_dtype: str, shape: tuple = (1, 96, 128, 128), num_steps: int = 5) -> dict:
    """Seconds of each way of computing a 3x3 convolution's input gradient on `shape` ([B, H, W, C] -> C).

    The default shape is one of VGG16's middle layers at 512x384; a probe takes about a second.

    Returns:
        {way (`INPUT_GRADIENTS`): median seconds}.
    """
    batch, height, width, channels = shape
    generator = tf.random.Generator.from_seed(0)
    output_gradient = tf.cast(generator.normal([batch, height, width, channels]), compute_dtype)
    kernel = tf.cast(generator.normal([3, 3, channels, channels]) * 0.05, compute_dtype)
    native = tf.function(lambda: tf.raw_ops.Conv2DBackpropInput(
        input_sizes=[batch, height + 2, width + 2, channels], filter=kernel, out_backprop=output_gradient,
        strides=[1, 1, 1, 1], padding="VALID"))
    forward = tf.function(lambda: input_gradient_by_forward_convolution(output_gradient, kernel, "VALID"))
    seconds = {}
    for way, gradient in ((NATIVE, native), (FORWARD_CONVOLUTION, forward)):
        durations = []
        for step in range(2 + num_steps):  # two untimed: the trace and oneDNN's primitive cache
            start = time.perf_counter()
            gradient().numpy()
            if step >= 2:
                durations.append(time.perf_counter() - start)
        seconds[way] = statistics.median(durations)
    return seconds
