"""VGG's 3x3 convolutions on whichever of TensorFlow's two convolution kernels is faster on the machine.

A train step runs each convolution forward and then its gradient with respect to its input (the weights are
frozen: they get no gradient). TensorFlow has a kernel for each, Conv2D and Conv2DBackpropInput, but either
can do the other's work, to float rounding (4e-7 relative in float32):
- the input gradient of a stride-1 convolution is a forward convolution of the output gradient, padded by the
  kernel's reach, with the kernel flipped in space and its input and output channels swapped;
- the forward convolution is, the same way, Conv2DBackpropInput run on the input with that flipped kernel.
Which kernel is faster depends on the CPU, the precision and TensorFlow's build, and not by a little:
- on one AVX2-only CPU Conv2DBackpropInput took 2.4x Conv2D's time (371 ms against 154 ms at
  384x512, 64->64);
- with oneDNN held to AVX2 on an AVX-512 CPU it is the other way round. Conv2D there hands oneDNN its weights
  in TensorFlow's own layout, which only a generic GEMM kernel takes (285 ms at 192x256, 128->128), while
  Conv2DBackpropInput lets oneDNN lay the weights out for its direct kernel (73 ms);
- with AVX-512 the two take the same time.
So the compute plan times the three ways (`KERNELS`) on the machine (`time_kernels`, via `device.plan_compute`)
and a `KernelPlan` says which each convolution runs.
"""

import dataclasses
import time
from typing import Sequence

import keras
import tensorflow as tf

# The ways a convolution layer can run its forward pass and its input gradient.
NATIVE = "native"  # Conv2D forward, Conv2DBackpropInput for the input gradient: TensorFlow's own choice
FORWARD_KERNEL = "forward_kernel"  # Conv2D for both: the input gradient as a forward convolution
BACKWARD_KERNEL = "backward_kernel"  # Conv2DBackpropInput for both: the forward pass as a transposed convolution
KERNELS = (NATIVE, FORWARD_KERNEL, BACKWARD_KERNEL)

_UNIT_STRIDES = [1, 1, 1, 1]


@dataclasses.dataclass(frozen=True)
class KernelPlan:
    """Which way (`KERNELS`) each of VGG's convolutions runs.

    The first convolution, whose input is the 3-channel image, is planned apart from the twelve others, whose
    inputs have 64 to 512 channels: with 3 channels on one side the two kernels' speeds differ by up to 9x
    (with oneDNN held to AVX2, Conv2DBackpropInput as the first convolution's forward pass: 55 ms against
    Conv2D's 6 ms at 384x512), in the other direction from the deeper layers.

    Attributes:
        first: the way of the first convolution.
        rest: the way of the others.
    """

    first: str = NATIVE
    rest: str = NATIVE

    def for_layer(self, channels_in: int) -> str:
        return self.first if channels_in == 3 else self.rest

    def describe(self) -> str:
        """'' for TensorFlow's own kernels; else what runs where, for the plan's line."""
        if self.first == self.rest:
            return f"{_DESCRIPTIONS[self.rest]} in every convolution" if self.rest != NATIVE else ""
        parts = [f"{_DESCRIPTIONS[way]} in {where}" for way, where in ((self.first, "the first convolution"),
                                                                     (self.rest, "the others"))
                 if way != NATIVE]
        return "; ".join(parts)


_DESCRIPTIONS = {FORWARD_KERNEL: "input gradients as forward convolutions",
                 BACKWARD_KERNEL: "forward passes as transposed convolutions"}


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


def input_gradient_by_backward_kernel(output_gradient: tf.Tensor, kernel: tf.Tensor, input_shape: tf.Tensor,
                                      padding: str) -> tf.Tensor:
    """The same gradient by TensorFlow's own kernel, Conv2DBackpropInput (`input_shape`: the inputs' shape)."""
    return tf.raw_ops.Conv2DBackpropInput(input_sizes=input_shape, filter=kernel, out_backprop=output_gradient,
                                          strides=_UNIT_STRIDES, padding=padding)


def forward_by_backward_kernel(inputs: tf.Tensor, kernel: tf.Tensor, padding: str) -> tf.Tensor:
    """`tf.nn.conv2d(inputs, kernel, 1, padding)` (stride 1, 3x3) computed by Conv2DBackpropInput.

    Conv2DBackpropInput with "SAME" padding is a zero-padded convolution with the flipped kernel of
    `input_gradient_kernel`, which flipped again is `kernel`. A "VALID" convolution is the inside of the
    "SAME" one: the outputs whose window lies within the input.
    """
    shape = tf.shape(inputs)
    same = tf.raw_ops.Conv2DBackpropInput(
        input_sizes=tf.stack([shape[0], shape[1], shape[2], kernel.shape[3]]), filter=input_gradient_kernel(kernel),
        out_backprop=inputs, strides=_UNIT_STRIDES, padding="SAME")
    if padding == "VALID":
        reach_y, reach_x = kernel.shape[0] // 2, kernel.shape[1] // 2
        return same[:, reach_y:-reach_y, reach_x:-reach_x]
    return same


def conv2d(inputs: tf.Tensor, kernel: tf.Tensor, padding: str, way: str) -> tf.Tensor:
    """`tf.nn.conv2d(inputs, kernel, 1, padding)` whose forward pass and input gradient run as `way` says.

    Args:
        inputs: [B, H, W, C_in].
        kernel: [kh, kw, C_in, C_out], odd sides, a tensor (not a variable: it gets no gradient).
        padding: "VALID" or "SAME".
        way: one of `KERNELS`.
    """
    if way == NATIVE:
        return tf.nn.conv2d(inputs, kernel, 1, padding)

    @tf.custom_gradient
    def convolve(images, weights):
        if way == FORWARD_KERNEL:
            outputs = tf.nn.conv2d(images, weights, 1, padding)
        else:
            outputs = forward_by_backward_kernel(images, weights, padding)

        def gradient(output_gradient):
            if way == FORWARD_KERNEL:
                return input_gradient_by_forward_convolution(output_gradient, weights, padding), None
            return input_gradient_by_backward_kernel(output_gradient, weights, tf.shape(images), padding), None

        return outputs, gradient

    return convolve(inputs, kernel)


class Conv2DOnKernels(keras.layers.Conv2D):
    """A stride-1 Keras Conv2D that runs `conv2d` the way (`KERNELS`) it is given."""

    def __init__(self, *args, way: str = NATIVE, **kwargs):
        super().__init__(*args, **kwargs)
        self.way = way

    def convolution_op(self, inputs, kernel):
        return conv2d(inputs, tf.convert_to_tensor(kernel), self.padding.upper(), self.way)

    def get_config(self):
        return {**super().get_config(), "way": self.way}


def time_kernels(compute_dtype: str, shapes: Sequence[tuple], num_steps: int = 3) -> dict:
    """Seconds of 3x3 convolutions' forward passes and input gradients, each way, summed over `shapes`.

    Args:
        compute_dtype: "float32", "bfloat16" or "float16".
        shapes: (B, H, W, C_in, C_out) of each convolution's output.
        num_steps: timed runs of each way on each shape, the ways in turn (the machine's speed drifts); the
            fastest run counts, since other work on the machine only ever slows a run down.

    Returns:
        {way (`KERNELS`): seconds}.
    """
    seconds = dict.fromkeys(KERNELS, 0.0)
    for shape in shapes:
        for way, duration in _time_kernels_on(compute_dtype, shape, num_steps).items():
            seconds[way] += duration
    return seconds


def _time_kernels_on(compute_dtype: str, shape: tuple, num_steps: int) -> dict:
    batch, height, width, channels_in, channels_out = shape
    generator = tf.random.Generator.from_seed(0)
    # Padded as the network pads: the convolution itself is "VALID".
    inputs = tf.cast(generator.uniform([batch, height + 2, width + 2, channels_in]), compute_dtype)
    output_gradient = tf.cast(generator.normal([batch, height, width, channels_out]), compute_dtype)
    kernel = tf.cast(generator.normal([3, 3, channels_in, channels_out]) * 0.05, compute_dtype)

    def forward_and_input_gradient(way):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = conv2d(inputs, kernel, "VALID", way)
        # Both returned: the input gradient does not need the outputs, and a graph would skip what nobody reads.
        return outputs, tape.gradient(outputs, inputs, output_gradients=output_gradient)

    steps = {way: tf.function(lambda way=way: forward_and_input_gradient(way)) for way in KERNELS}
    for step in steps.values():  # untimed: the trace and oneDNN's primitive cache
        _ = [tensor.numpy() for tensor in step()]
    seconds = dict.fromkeys(KERNELS, float("inf"))
    for _ in range(num_steps):
        for way, step in steps.items():
            start = time.perf_counter()
            _ = [tensor.numpy() for tensor in step()]
            seconds[way] = min(seconds[way], time.perf_counter() - start)
    return seconds
