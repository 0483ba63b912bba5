"""The pyramid of a coarse-to-fine run: one `Level` per scale, its size and steps, the size a style is seen at on
it, and the images it starts from. The optimizer's state moves up by its own `carried_up`.

Small scales are cheap and give the result the style's large structures (a swirl spanning the sky); each larger
scale then only has to add detail. The long sides grow from `config.initial_size` to `config.size` by at most
sqrt(2) a level; the steps fall geometrically from `config.initial_steps` at the first level to `config.steps`
at the last (a step costs about twice as much at each larger level). With one level this is plain Gatys.

Each formula is written once, as tensor code (`level_sides_and_steps`, `level_style_size`, `level_start`, and
the sizes of `tf_style.sizes`): the library evaluates it eagerly (`pyramid_of`, `Level`), and the served
stylizer (`tf_style.serving.stylizer`) calls the same functions on a request's tensors, so that a request and
`stylize()` run the same levels.
"""

import dataclasses
import math
from typing import Optional

import numpy as np
import tensorflow as tf

from tf_style.config import StyleConfig
from tf_style.sizes import ints, round_half_even, scaled_size, style_seen_size

# Each level's long side is at most this times the last one's.
LEVEL_RATIO = math.sqrt(2)


def level_sides_and_steps(size, steps, initial_size: int, initial_steps: Optional[int]) -> tuple:
    """The levels' long sides and steps, smallest first: ([L] int32, [L] int32).

    From `initial_size` to `size` (one level of `size` where `initial_size` is 0 or not smaller), the steps
    falling geometrically from `initial_steps` to `steps` (`steps` at every level where it is None). `size` and
    `steps` are Python ints or int32 scalar tensors (a served request's); `initial_size` and `initial_steps` are
    Python values (a served stylizer's export fixes them). In float64, as Python computes.
    """
    if not initial_size:
        return tf.reshape(size, [1]), tf.reshape(steps, [1])
    size_ratio = tf.cast(size, tf.float64) / initial_size
    num_levels = tf.where(
        initial_size >= size, 1,
        tf.cast(tf.math.ceil(tf.math.log(size_ratio) / math.log(LEVEL_RATIO) - 1e-9), tf.int32) + 1)
    # Where there is one level, what these give is replaced by `size` and `steps`.
    last_index = tf.cast(tf.maximum(num_levels - 1, 1), tf.float64)
    indices = tf.cast(tf.range(num_levels), tf.float64)
    ratio = tf.pow(size_ratio, 1 / last_index)
    sides = tf.where(num_levels == 1, tf.reshape(size, [1]), round_half_even(initial_size * tf.pow(ratio, indices)))
    if initial_steps is None:
        return sides, tf.fill([num_levels], steps)
    steps_ratio = tf.cast(steps, tf.float64) / initial_steps
    geometric = tf.maximum(1, round_half_even(initial_steps * tf.pow(steps_ratio, indices / last_index)))
    return sides, tf.where(num_levels == 1, tf.reshape(steps, [1]), geometric)


def style_long_side_at(long_side, level_long_side, final_long_side) -> tf.Tensor:
    """The long side a style seen with `long_side` at the last level (long side `final_long_side`) is asked to
    have at the level of long side `level_long_side`, before `sizes.style_seen_size` enlarges a style too small
    for the network (int32)."""
    scale_factor = tf.cast(level_long_side, tf.float64) / tf.cast(final_long_side, tf.float64)
    return tf.maximum(1, round_half_even(tf.cast(long_side, tf.float64) * scale_factor))


def level_style_size(style_height, style_width, level_long_side, final_long_side) -> tuple:
    """(height, width) at a level of a style seen at style_height x style_width at the last level: scaled as the
    result is, but never under `vgg.MIN_INPUT_SIDE` on a side (int32 scalars)."""
    long_side = style_long_side_at(tf.maximum(style_height, style_width), level_long_side, final_long_side)
    return style_seen_size(style_height, style_width, long_side)


def level_start(images, start_images, height, width, scale_detail: float) -> tf.Tensor:
    """The images a level of height x width starts from: the last level's results `images` [B, h, w, 3] moved up
    to it, with `scale_detail` times the detail `start_images` have at this size and lose at the smaller one
    (`upsample_with_detail`); for the first level (`images` are the starts themselves, no smaller) `images`
    resized. The sizes may be scalar tensors, as in the served graph."""
    if not scale_detail:
        return resized(images, height, width)
    return tf.cond(tf.shape(images)[1] < height,
                   lambda: upsample_with_detail(images, start_images, height, width, scale_detail),
                   lambda: resized(images, height, width))


def noise_start(height, width, seed) -> tf.Tensor:
    """The start of `--init=noise`: float32 [height, width, 3], uniform in [0, 255), drawn from `seed`.

    By TensorFlow's stateless Philox generator, whose numbers depend only on the seed and the shape: the library
    and the served graph draw the same start from the same seed, on any machine. The sizes may be scalar tensors;
    the seed an integer from 0 to `config.MAX_SEED`.
    """
    seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
    return tf.random.stateless_uniform(tf.stack([height, width, 3]), seed, minval=0.0, maxval=255.0, alg="philox")


@dataclasses.dataclass(frozen=True)
class Level:
    """One scale of the pyramid, with the formulas above evaluated eagerly for it.

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

    def size_of(self, height: int, width: int) -> tuple:
        """(height, width) at this level of an image of height x width."""
        return ints(scaled_size(height, width, self.long_side))

    def style_size_of(self, height: int, width: int) -> tuple:
        """(height, width) at this level of a style seen at height x width at the last level."""
        return ints(level_style_size(height, width, self.long_side, self.final_long_side))

    def style_long_side_of(self, long_side: int) -> int:
        """The long side a style seen with `long_side` at the last level is asked to have at this level."""
        return int(style_long_side_at(long_side, self.long_side, self.final_long_side))

    def start(self, images, start_images, scale_detail: float) -> np.ndarray:
        """`level_start` at this level's size of the starts `start_images` [B, H, W, 3]."""
        height, width = self.size_of(*start_images.shape[1:3])
        return level_start(images, start_images, height, width, scale_detail).numpy()


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
    """The levels `config` asks for (`level_sides_and_steps`)."""
    sides, steps = level_sides_and_steps(config.size, config.steps, config.initial_size, config.initial_steps)
    return Pyramid(tuple(Level(index, int(side), int(num_steps), config.size)
                         for index, (side, num_steps) in enumerate(zip(sides.numpy(), steps.numpy()))))


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
