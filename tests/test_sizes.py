"""tf_style.sizes: a photo's size at the result's long side and a style's seen size, as Python's arithmetic
gives them, eagerly and in a traced graph (a served request's)."""

import numpy as np
import tensorflow as tf

from tf_style.sizes import ints, scaled_size, style_long_side, style_seen_size


def test_a_scaled_size_keeps_the_aspect_ratio_rounding_half_to_even():
    assert ints(scaled_size(480, 640, 256)) == (192, 256)
    assert ints(scaled_size(513, 17, 64)) == (64, 2)
    assert ints(scaled_size(3, 1000, 10)) == (1, 10)  # never 0 on a side
    # 300 x 150 at 5: 2.5 rounds to 2, as Python's round does.
    assert ints(scaled_size(150, 300, 5)) == (2, 5) == (round(150 * 5 / 300), 5)


def test_the_sizes_are_pythons_arithmetic():
    for height, width, long_side in np.random.default_rng(0).integers(1, 2000, (300, 3)).tolist():
        scale = long_side / max(height, width)
        expected = max(1, round(height * scale)), max(1, round(width * scale))
        assert ints(scaled_size(height, width, long_side)) == expected, (height, width, long_side)


def test_a_style_is_seen_at_least_as_large_as_the_network_needs():
    assert ints(style_seen_size(300, 400, 200)) == (150, 200)
    assert ints(style_seen_size(16, 640, 64)) == (16, 640)  # 40:1: its short side would be 2 px
    assert ints(style_seen_size(64, 64, 8)) == (16, 16)
    assert min(ints(style_seen_size(9, 700, 100))) == 16
    assert int(style_long_side(512, 1.3)) == 666 and int(style_long_side(20, 0.5)) == 16


def test_the_sizes_in_a_traced_graph_are_the_eager_ones():
    traced_size, traced_style = tf.function(scaled_size), tf.function(style_seen_size)
    for height, width, long_side in [(384, 512, 181), (513, 17, 64), (1000, 999, 333), (40, 400, 100)]:
        arguments = [tf.constant(height), tf.constant(width), tf.constant(long_side)]
        assert ints(traced_size(*arguments)) == ints(scaled_size(height, width, long_side))
        assert ints(traced_style(*arguments)) == ints(style_seen_size(height, width, long_side))
