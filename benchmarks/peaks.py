"""The machine's peak GFLOP/s per dtype, measured on a square matmul and a 3x3 convolution (`measure_peaks`),
against which each step's achieved GFLOP/s is a fraction.
"""

from typing import Sequence

import keras
import tensorflow as tf

from benchmarks import pytorch_peer
from benchmarks.timing import time_steps

# Operand sizes of the peak measurements: a square matmul, and a VGG-like 3x3 convolution.
PEAK_MATMUL_SIZE = 2048
PEAK_CONV_SHAPE = (1, 128, 128, 256)


def measure_peaks(precisions: Sequence[str] = ("float32", "bfloat16"), num_steps: int = 10,
                  warmup_steps: int = 3) -> dict:
    """The machine's GFLOP/s for a square matmul and a 3x3 convolution, per dtype (the convolution also through
    PyTorch, when it is installed).

    Returns:
        {dtype: {"matmul_gflops", "conv_gflops", ["pytorch_conv_gflops",] "peak_gflops" (the largest)}}.
    """
    peaks = {}
    generator = tf.random.Generator.from_seed(0)
    for dtype in precisions:
        matrix = tf.cast(generator.normal((PEAK_MATMUL_SIZE, PEAK_MATMUL_SIZE)), dtype)
        batch, height, width, channels = PEAK_CONV_SHAPE
        activations = tf.cast(generator.normal(PEAK_CONV_SHAPE), dtype)
        kernel = tf.cast(generator.normal((3, 3, channels, channels)), dtype)
        matmul = time_steps(lambda: tf.matmul(matrix, matrix)[0, 0].numpy(), num_steps, warmup_steps)
        conv = time_steps(lambda: tf.nn.conv2d(activations, kernel, 1, "SAME")[0, 0, 0, 0].numpy(), num_steps,
                          warmup_steps)
        matmul_gflops = 2 * PEAK_MATMUL_SIZE ** 3 / matmul["seconds_per_step"] / 1e9
        conv_gflops = 2 * batch * height * width * 9 * channels * channels / conv["seconds_per_step"] / 1e9
        peaks[dtype] = {"matmul_gflops": matmul_gflops, "conv_gflops": conv_gflops,
                        "peak_gflops": max(matmul_gflops, conv_gflops)}
        if pytorch_peer.available():
            # The fastest convolution the machine has may be another library's.
            pytorch_gflops = pytorch_peer.conv_gflops(PEAK_CONV_SHAPE, dtype == "bfloat16", num_steps, warmup_steps)
            peaks[dtype]["pytorch_conv_gflops"] = pytorch_gflops
            peaks[dtype]["peak_gflops"] = max(peaks[dtype]["peak_gflops"], pytorch_gflops)
    return peaks


def peak_dtype(dtype_policy: str) -> str:
    """The dtype whose peak bounds a Keras dtype policy's convolutions: "mixed_bfloat16" -> "bfloat16"."""
    return keras.DTypePolicy(dtype_policy).compute_dtype
