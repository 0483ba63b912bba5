"""The sizes of a run's images: a photo scaled to the result's long side, and the size a style is seen at.

Written once, as tensor code: the library evaluates these eagerly on Python ints (`ints` turns the answer into
Python ints), and the served stylizer calls the same functions on a request's tensors. In float64 and rounding
half to even, which is what Python's own arithmetic and `round` do, so an eager answer is the one plain Python
would give.
"""

import tensorflow as tf

from tf_style.network.vgg import MIN_INPUT_SIDE


def scaled_size(height, width, long_side) -> tuple:
    """(height, width) scaled so that the longer side is `long_side`, keeping the aspect ratio, at least 1 each:
    int32 scalars (Python ints or scalar tensors in)."""
    height, width = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
    scale = tf.cast(long_side, tf.float64) / tf.maximum(height, width)
    return tf.maximum(1, round_half_even(height * scale)), tf.maximum(1, round_half_even(width * scale))


def style_seen_size(height, width, long_side) -> tuple:
    """The size a style image of height x width is seen at: long side `long_side`, or larger where that would
    leave its short side under what VGG needs (a small or very wide style, a coarse scale, a small
    --style_scale): int32 scalars.

    Upscaling keeps every style usable at every scale; its strokes then come out a little larger there.
    """
    seen_height, seen_width = scaled_size(height, width, long_side)
    scale = MIN_INPUT_SIDE / tf.cast(tf.minimum(height, width), tf.float64)
    upscaled_height = tf.maximum(MIN_INPUT_SIDE, round_half_even(tf.cast(height, tf.float64) * scale))
    upscaled_width = tf.maximum(MIN_INPUT_SIDE, round_half_even(tf.cast(width, tf.float64) * scale))
    large_enough = tf.minimum(seen_height, seen_width) >= MIN_INPUT_SIDE
    return tf.where(large_enough, seen_height, upscaled_height), tf.where(large_enough, seen_width, upscaled_width)


def style_long_side(size, style_scale: float) -> tf.Tensor:
    """The long side a style is seen at, at the last level, for a result of long side `size`: `style_scale`
    times it, and at least the network's smallest input (int32)."""
    return tf.maximum(MIN_INPUT_SIDE, round_half_even(tf.cast(size, tf.float64) * style_scale))


def round_half_even(value: tf.Tensor) -> tf.Tensor:
    """float64 -> int32, half to even, as Python's round."""
    return tf.cast(tf.round(value), tf.int32)


def ints(values: tuple) -> tuple:
    """Scalar tensors evaluated eagerly (a size), as a tuple of Python ints."""
    return tuple(int(value) for value in values)
