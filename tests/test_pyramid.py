"""The pyramid: each level's size and steps, the same in the library and in a served request's graph, and how
images move up a level."""

import numpy as np
import pytest
import tensorflow as tf

from tf_style.config import StyleConfig, scaled_size, style_seen_size
from tf_style.optimization import pyramid
from tf_style.optimization.pyramid import pyramid_of


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
    assert first.size_of(384, 512) == (96, 128) and first.scale_factor == 0.25
    # A style seen at 600x900 at the last level: a quarter of it, a short side of 150.
    assert first.style_size_of(600, 900) == (150, 225)
    # One seen at 40x400: a quarter would be 10 px high, under the network's minimum of 16: upscaled to 16.
    assert first.style_size_of(40, 400) == style_seen_size(40, 400, 100) == (16, 160)


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


@pytest.mark.parametrize("initial_size, initial_steps", [(128, 150), (100, 7), (0, 150), (128, None)])
def test_the_levels_in_a_served_graph_are_the_librarys(initial_size, initial_steps):
    config = StyleConfig(initial_size=initial_size, initial_steps=initial_steps)
    served = tf.function(lambda size, steps: pyramid.served_levels(size, steps, config))
    for size in [*range(16, 300, 7), 362, 512, 724, 1000, 1024]:
        for steps in (1, 13, 40, 500):
            sizes, level_steps = served(tf.constant(size), tf.constant(steps))
            expected = pyramid_of(config.replace(size=size, steps=steps))
            assert sizes.numpy().tolist() == list(expected.long_sides), (size, steps)
            assert level_steps.numpy().tolist() == [level.num_steps for level in expected]


def test_the_sizes_in_a_served_graph_are_the_librarys():
    for height, width, long_side in [(384, 512, 181), (513, 17, 64), (1000, 999, 333), (40, 400, 100)]:
        served = [int(value) for value in pyramid.served_size_of(height, width, long_side)]
        assert served == list(scaled_size(height, width, long_side))
        served = [int(value) for value in pyramid.served_style_size_of(height, width, long_side)]
        assert served == list(style_seen_size(height, width, long_side))
    level = pyramid_of(StyleConfig(size=512, initial_size=128)).levels[1]
    served = pyramid.served_level_style_size_of(600, 900, level.long_side, level.final_long_side)
    assert [int(value) for value in served] == list(level.style_size_of(600, 900))
    assert int(pyramid.served_style_long_side(512, 1.3)) == pyramid.style_long_side(512, 1.3) == 666
