"""The pyramid of a coarse-to-fine run: one `Level` per scale, the one place where each scale's size and steps
are computed and where the images move up to it (the optimizer's state moves up by its own `carried_up`).

Small scales are cheap and give the result the style's large structures (a swirl spanning the sky); each larger
scale then only has to add detail. The long sides grow from `config.initial_size` to `config.size` by at most
sqrt(2) a level; the steps fall geometrically from `config.initial_steps` at the first level to `config.steps`
at the last (a step costs about twice as much at each larger level). With one level this is plain Gatys.

`pyramid_of(config)` is the library's pyramid; `served_levels`, `served_size_of` and `served_style_size_of` are
the same formulas on the tensors of a served request (`tf_style.serving.stylizer`), in float64 and rounding half
to even as Python does, so that a request and `stylize()` run the same levels (tests/test_pyramid.py holds them
equal).
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from tf_style.config import StyleConfig, scaled_size, style_seen_size
from tf_style.network.vgg import MIN_INPUT_SIDE

# Each level's long side is at most this times the last one's.
LEVEL_RATIO = math.sqrt(2)


@dataclasses.dataclass(frozen=True)
class Level:
    """One scale of the pyramid.

    Attributes:
        index: its place, 0 for the first (the smallest).
        long_side: the long side of its images, in pixels.
        num_steps: the optimizer's steps run at it.
        final_long_side: the long side of the last level, the result's.
    """

    index: int
    long_side: int
    num_steps: int
    final_long_side: int

    @property
    def scale_factor(self) -> float:
        """This level's long side over the last level's."""
        return self.long_side / self.final_long_side

    def size_of(self, height: int, width: int) -> tuple:
        """(height, width) at this level of an image of height x width."""
        return scaled_size(height, width, self.long_side)

    def style_size_of(self, height: int, width: int) -> tuple:
        """(height, width) at this level of a style seen at height x width at the last level: scaled as the
        result is, but never under `vgg.MIN_INPUT_SIDE` on a side (`config.style_seen_size`)."""
        return style_seen_size(height, width, self.style_long_side_of(max(height, width)))

    def style_long_side_of(self, long_side: int) -> int:
        """The long side a style seen with `long_side` at the last level is asked to have at this level (before
        `style_size_of` enlarges a style too small for the network)."""
        return max(1, round(long_side * self.scale_factor))

    def start(self, images, start_images, scale_detail: float) -> np.ndarray:
        """The images a level starts from: the last level's results `images` [B, h, w, 3] at this level's
        size, with `scale_detail` times the detail `start_images` have at this size and lose at the smaller one
        (`upsample_with_detail`), or, for the first level, `images` resized."""
        height, width = self.size_of(*start_images.shape[1:3])
        if scale_detail and images.shape[1] < height:
            return upsample_with_detail(images, start_images, height, width, scale_detail).numpy()
        return resize_image(images, height, width)


@dataclasses.dataclass(frozen=True)
class Pyramid:
    """The levels of a run, smallest first."""

    levels: tuple

    @property
    def total_steps(self) -> int:
        return sum(level.num_steps for level in self.levels)

    @property
    def first(self) -> Level:
        return self.levels[0]

    @property
    def long_sides(self) -> tuple:
        return tuple(level.long_side for level in self.levels)

    def __len__(self) -> int:
        return len(self.levels)

    def __iter__(self):
        return iter(self.levels)


def pyramid_of(config: StyleConfig) -> Pyramid:
    """The levels `config` asks for: from `initial_size` (0: one level) to `size`, with their steps."""
    size, initial_size = config.size, config.initial_size
    if not initial_size or initial_size >= size:
        return Pyramid((Level(0, size, config.steps, size),))
    num_levels = math.ceil(math.log(size / initial_size) / math.log(LEVEL_RATIO) - 1e-9) + 1
    ratio = (size / initial_size) ** (1 / (num_levels - 1))
    levels = []
    for index in range(num_levels):
        if config.initial_steps is None:
            num_steps = config.steps
        else:
            fraction = index / (num_levels - 1)
            num_steps = max(1, round(config.initial_steps * (config.steps / config.initial_steps) ** fraction))
        levels.append(Level(index, round(initial_size * ratio ** index), num_steps, size))
    return Pyramid(tuple(levels))


def style_long_side(size: int, style_scale: float) -> int:
    """The long side a style is seen at, at the last level, for a result of long side `size`: `style_scale`
    times it, and at least the network's smallest input."""
    return max(MIN_INPUT_SIDE, round(size * style_scale))


def served_style_long_side(size: tf.Tensor, style_scale: float) -> tf.Tensor:
    """`style_long_side` for a served request's int32 `size`."""
    return tf.maximum(MIN_INPUT_SIDE, _round(tf.cast(size, tf.float64) * style_scale))


def served_levels(size: tf.Tensor, steps: tf.Tensor, config: StyleConfig) -> tuple:
    """`pyramid_of` for a served request's int32 `size` and `steps`, with the export's `initial_size` and
    `initial_steps`, in float64 as Python computes them: ([L] long sides, [L] steps)."""
    if not config.initial_size:
        return tf.reshape(size, [1]), tf.reshape(steps, [1])
    size_ratio = tf.cast(size, tf.float64) / config.initial_size
    num_levels = tf.where(
        config.initial_size >= size, 1,
        tf.cast(tf.math.ceil(tf.math.log(size_ratio) / math.log(LEVEL_RATIO) - 1e-9), tf.int32) + 1)
    # Where there is one level, what these give is replaced by the request's size and steps.
    last_index = tf.cast(tf.maximum(num_levels - 1, 1), tf.float64)
    indices = tf.cast(tf.range(num_levels), tf.float64)
    ratio = tf.pow(size_ratio, 1 / last_index)
    sizes = tf.where(num_levels == 1, tf.reshape(size, [1]), _round(config.initial_size * tf.pow(ratio, indices)))
    if config.initial_steps is None:
        return sizes, tf.fill([num_levels], steps)
    steps_ratio = tf.cast(steps, tf.float64) / config.initial_steps
    geometric = tf.maximum(1, _round(config.initial_steps * tf.pow(steps_ratio, indices / last_index)))
    return sizes, tf.where(num_levels == 1, tf.reshape(steps, [1]), geometric)


def served_size_of(height: tf.Tensor, width: tf.Tensor, long_side: tf.Tensor) -> tuple:
    """`config.scaled_size` on int32 scalars, in float64 as Python computes it: (height, width)."""
    scale = tf.cast(long_side, tf.float64) / tf.cast(tf.maximum(height, width), tf.float64)
    return (tf.maximum(1, _round(tf.cast(height, tf.float64) * scale)),
            tf.maximum(1, _round(tf.cast(width, tf.float64) * scale)))


def served_style_size_of(height: tf.Tensor, width: tf.Tensor, long_side: tf.Tensor) -> tuple:
    """`config.style_seen_size` on int32 scalars: (height, width)."""
    seen_height, seen_width = served_size_of(height, width, long_side)
    scale = MIN_INPUT_SIDE / tf.cast(tf.minimum(height, width), tf.float64)
    upscaled = (tf.maximum(MIN_INPUT_SIDE, _round(tf.cast(height, tf.float64) * scale)),
                tf.maximum(MIN_INPUT_SIDE, _round(tf.cast(width, tf.float64) * scale)))
    large_enough = tf.minimum(seen_height, seen_width) >= MIN_INPUT_SIDE
    return tf.where(large_enough, seen_height, upscaled[0]), tf.where(large_enough, seen_width, upscaled[1])


def served_level_style_size_of(style_height: tf.Tensor, style_width: tf.Tensor, long_side: tf.Tensor,
                               final_long_side: tf.Tensor) -> tuple:
    """`Level.style_size_of` on int32 scalars: a style seen at style_height x style_width at the last level, at
    the level whose long side is `long_side`."""
    scale_factor = tf.cast(long_side, tf.float64) / tf.cast(final_long_side, tf.float64)
    seen_long_side = tf.maximum(1, _round(tf.cast(tf.maximum(style_height, style_width), tf.float64) * scale_factor))
    return served_style_size_of(style_height, style_width, seen_long_side)


def upsample_with_detail(images, detail_source, height, width, amount: float = 1.0) -> tf.Tensor:
    """`images` upsampled to (height, width), plus `amount` times the detail that `detail_source` has at that
    size and loses at the size of `images`: [B, h, w, 3], [B, H', W', 3] -> [B, height, width, 3] in [0, 255].

    An upsampled result is smooth at the new level's finest frequencies, and in smooth regions the style
    gradient grows the pattern of the network's pixel grid (a woven, maze-like texture, measured on the
    bundled pair) instead of strokes. The start image's own detail (the photo's, by default) seeds them.
    Arrays or tensors in; the sizes may be scalar tensors, as in the served graph.
    """
    detail = (resized(detail_source, height, width)
              - resized(resized(detail_source, tf.shape(images)[1], tf.shape(images)[2]), height, width))
    return tf.clip_by_value(resized(images, height, width) + amount * detail, 0.0, 255.0)


def resized(images, height, width) -> tf.Tensor:
    """Antialiased Lanczos resize of float32 [H, W, 3] or [B, H, W, 3] images, clipped to [0, 255]; the images
    themselves at their own size. Arrays or tensors in; the sizes may be scalar tensors, as in the served graph."""
    images = tf.convert_to_tensor(images, tf.float32)
    same_size = tf.logical_and(tf.shape(images)[-3] == height, tf.shape(images)[-2] == width)
    return tf.cond(same_size, lambda: images, lambda: tf.clip_by_value(
        tf.image.resize(images, tf.stack([height, width]), method="lanczos3", antialias=True), 0.0, 255.0))


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """`resized` for the library's arrays: float32 [H, W, 3] or [B, H, W, 3] -> the same at (height, width)."""
    if image.shape[-3:-1] == (height, width):
        return image
    return resized(image, height, width).numpy()


def _round(value: tf.Tensor) -> tf.Tensor:
    """float64 -> int32, half to even, as Python's round."""
    return tf.cast(tf.round(value), tf.int32)
