"""The pyramid: each level's size and steps, as Python's own arithmetic gives them, eagerly and in a traced graph
(a served request's), and how images move up a level."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tf_style.config import StyleConfig
from tf_style.optimization import pyramid
from tf_style.optimization.pyramid import pyramid_of
from tf_style.sizes import ints, style_seen_size


def test_steps_fall_geometrically_from_the_first_level_to_the_last():
    levels = pyramid_of(StyleConfig(size=512, initial_size=256, initial_steps=400, steps=100))
    assert levels.long_sides == (256, 362, 512)
    assert [level.num_steps for level in levels] == [400, 200, 100] and levels.total_steps == 700
    assert [level.num_steps for level in pyramid_of(StyleConfig(initial_steps=None, steps=30))] == [30] * 5
    single = pyramid_of(StyleConfig(size=128, initial_size=256, initial_steps=200, steps=7))
    assert single.long_sides == (128,) and single.first.num_steps == 7
    assert pyramid_of(StyleConfig(size=300, initial_size=0, steps=9)).levels == (pyramid.Level(0, 300, 9, 300),)


def test_levels_grow_by_at_most_the_square_root_of_two():
    sizes = pyramid_of(StyleConfig(size=1000, initial_size=128)).long_sides
    assert sizes[0] == 128 and sizes[-1] == 1000
    assert all(1 < later / earlier <= 2 ** 0.5 + 1e-3 for earlier, later in zip(sizes, sizes[1:]))


def test_a_level_scales_images_and_styles():
    first = pyramid_of(StyleConfig(size=512, initial_size=128)).first
    assert first.size_of(384, 512) == (96, 128) and first.style_long_side_of(400) == 100
    # A style seen at 600x900 at the last level: a quarter of it, a short side of 150.
    assert first.style_size_of(600, 900) == (150, 225)
    # One seen at 40x400: a quarter would be 10 px high, under the network's minimum of 16: upscaled to 16.
    assert first.style_size_of(40, 400) == ints(style_seen_size(40, 400, 100)) == (16, 160)


def test_a_level_starts_from_the_last_result_upsampled_plus_the_photos_detail():
    levels = pyramid_of(StyleConfig(size=64, initial_size=32))
    photo = np.random.default_rng(0).uniform(0, 255, (1, 48, 64, 3)).astype(np.float32)
    smaller = pyramid.resize_image(photo, *levels.first.size_of(48, 64))
    last = levels.levels[-1]
    without_detail = last.start(smaller, photo, 0.0)
    with_detail = last.start(smaller, photo, 1.0)
    assert without_detail.shape == with_detail.shape == (1, 48, 64, 3)
    # The photo's detail, added back, brings the start nearer the photo than the bare upsampled result.
    assert np.abs(with_detail - photo).mean() < 0.5 * np.abs(without_detail - photo).mean()


def _python_levels(size: int, steps: int, initial_size: int, initial_steps) -> tuple:
    """The levels as plain Python computes them (float64, round half to even): (long sides, steps)."""
    if not initial_size or initial_size >= size:
        return [size], [steps]
    num_levels = math.ceil(math.log(size / initial_size) / math.log(math.sqrt(2)) - 1e-9) + 1
    ratio = (size / initial_size) ** (1 / (num_levels - 1))
    sides = [round(initial_size * ratio ** index) for index in range(num_levels)]
    if initial_steps is None:
        return sides, [steps] * num_levels
    return sides, [max(1, round(initial_steps * (steps / initial_steps) ** (index / (num_levels - 1))))
                   for index in range(num_levels)]


@pytest.mark.parametrize("initial_size, initial_steps", [(128, 150), (100, 7), (0, 150), (128, None)])
def test_the_levels_are_pythons_arithmetic_eagerly_and_in_a_traced_graph(initial_size, initial_steps):
    """A served request computes its levels from its `size` and `steps` tensors in a graph, `stylize()` eagerly
    from Python ints: the one function must give both what Python's float64 and `round` give."""
    traced = tf.function(lambda size, steps: pyramid.level_sides_and_steps(size, steps, initial_size, initial_steps))
    config = StyleConfig(initial_size=initial_size, initial_steps=initial_steps)
    for size in [*range(16, 300, 7), 362, 512, 724, 1000, 1024]:
        for steps in (1, 13, 40, 500):
            expected = _python_levels(size, steps, initial_size, initial_steps)
            sides, level_steps = traced(tf.constant(size), tf.constant(steps))
            assert (sides.numpy().tolist(), level_steps.numpy().tolist()) == expected, (size, steps)
            levels = pyramid_of(config.replace(size=size, steps=steps))
            assert (list(levels.long_sides), [level.num_steps for level in levels]) == expected, (size, steps)


def test_a_levels_style_size_in_a_traced_graph_is_the_eager_one():
    level = pyramid_of(StyleConfig(size=512, initial_size=128)).levels[1]
    traced = tf.function(pyramid.level_style_size)
    for height, width in [(600, 900), (40, 400), (513, 17)]:
        served = traced(tf.constant(height), tf.constant(width), tf.constant(level.long_side), tf.constant(512))
        assert ints(served) == level.style_size_of(height, width)
