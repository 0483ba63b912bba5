"""Tiled optimization: the tiles, the margin, and that a tiled step is the untiled step (to float rounding)."""

import numpy as np
import pytest
import tensorflow as tf

import tf_style
from conftest import gradient_image, stripes_image
from tf_style.config import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, StyleConfig
from tf_style.network import vgg
from tf_style.network.features import extractor_for
from tf_style.objective.targets import batch_targets, style_statistics
from tf_style.objective.terms import objective_for
from tf_style.optimization.level import Optimization
from tf_style.tiling import tiles
from tf_style.tiling.tiled_objective import TiledObjective, TileProgress

HEIGHT, WIDTH = 192, 256  # the exactness test: 256 px in tiles of 64 px (4 x 3 tiles)


# ---------------------------------------------------------------------------------------------------------
# The grid and the margin.

@pytest.mark.parametrize("height, width, tile_size, margin", [(192, 256, 64, 64), (333, 250, 96, 32),
                                                               (100, 700, 512, 128), (64, 64, 64, 0)])
def test_the_inner_regions_partition_the_image_on_the_block5_grid(height, width, tile_size, margin):
    grid = tiles.tile_grid(height, width, tile_size, margin)
    covered = np.zeros((height, width), int)
    for tile in grid.tiles:
        top, bottom, left, right = tile.inner
        covered[top:bottom, left:right] += 1
        assert bottom - top <= tile_size + tiles.ALIGNMENT and right - left <= tile_size + tiles.ALIGNMENT
        # Cuts inside the image fall on block5's grid, so every tile pools as the whole image does.
        assert all(cut % tiles.ALIGNMENT == 0 or cut in (height, width) for cut in tile.inner + tile.padded)
        assert tile.padded == (max(0, top - margin), min(height, bottom + margin), max(0, left - margin),
                               min(width, right + margin))
    np.testing.assert_array_equal(covered, 1)


def test_the_plan_line_names_the_grid():
    assert tiles.tile_grid(3072, 4096, 1024, 64).describe() == "4 × 3 tiles of 1024 px + 64 px margin"


def test_the_margin_is_the_reach_of_the_deepest_layer():
    assert tiles.margin_for(vgg.VGG16, DEFAULT_CONTENT_LAYERS + DEFAULT_STYLE_LAYERS) == 64
    assert tiles.margin_for(vgg.VGG16, ["block1_conv1"]) == 16
    assert tiles.margin_for(vgg.VGG16, ["block3_conv1", "block1_conv1"]) == 16
    assert tiles.margin_for(vgg.VGG16, ["block5_conv3"]) == 96  # reaches 90 px before, 89 after
    assert tiles.margin_for(vgg.VGG19, DEFAULT_CONTENT_LAYERS + DEFAULT_STYLE_LAYERS) == 80  # 70 and 69 px
    assert tiles.margin_of(StyleConfig(tile_margin=32)) == 32


@pytest.mark.slow
def test_tiled_features_at_the_margin_are_the_untiled_ones_and_a_smaller_margin_is_not(extractor):
    """The reach computed in `margin_for` is measured here: 80 px gives VGG19's untiled features, 64 px does not."""
    image = gradient_image(HEIGHT, WIDTH)[None]
    untiled = extractor(image)
    names = extractor.layer_names
    margin = tiles.margin_of(StyleConfig())
    assert margin == 80
    exact = tiles.tiled_features(extractor, image, tiles.tile_grid(HEIGHT, WIDTH, 64, margin), names)
    for name in names:
        np.testing.assert_allclose(exact[name], untiled[name], rtol=1e-5, atol=1e-4 * np.abs(untiled[name]).max())
    short = tiles.tiled_features(extractor, image, tiles.tile_grid(HEIGHT, WIDTH, 64, margin - 16), names)
    # Measured: off by 0.05% of the layer's largest value (the positions that reach 70 px), against 1e-6 for float
    # rounding.
    assert np.abs(short["block5_conv1"] - untiled["block5_conv1"]).max() > 1e-4 * np.abs(untiled["block5_conv1"]).max()


# ---------------------------------------------------------------------------------------------------------
# Exactness: the loss, the gradient and Adam's steps.

def _problem(extractor, config: StyleConfig):
    content = gradient_image(HEIGHT, WIDTH)
    statistics = style_statistics(extractor, [stripes_image(160, 200)], config)
    grid = tiles.tile_grid(HEIGHT, WIDTH, 64, tiles.margin_of(config))
    start = np.clip(content + np.random.default_rng(1).normal(0, 20, content.shape), 0, 255)[None]
    return (batch_targets(extractor, content[None], [statistics], config),
            batch_targets(extractor, content[None], [statistics], config, grid), grid, start.astype(np.float32))


@pytest.mark.slow
@pytest.mark.parametrize("style_loss, tile_size", [("gram", 64), ("wasserstein", 64), ("gram", WIDTH)])
def test_the_tiled_loss_and_gradient_are_the_untiled_ones(extractor, style_loss, tile_size):
    """4 x 3 tiles, and one tile (whose single pass both completes the sums and differentiates)."""
    config = StyleConfig(style_loss=style_loss)
    targets, tiled_targets, _, start = _problem(extractor, config)
    grid = tiles.tile_grid(HEIGHT, WIDTH, tile_size, tiles.margin_of(config))
    assert len(grid.tiles) == (12 if tile_size == 64 else 1)
    image = tf.Variable(start)
    with tf.GradientTape() as tape:
        terms = objective_for(config).losses(extractor, image, targets)
        total = tf.reduce_sum(terms["total"])
    gradient = tape.gradient(total, image)
    tiled_terms, tiled_gradient = TiledObjective(extractor, objective_for(config), grid).losses_and_gradient(
        image, tiled_targets)
    for name in ("content", "style", "tv", "total"):
        np.testing.assert_allclose(tiled_terms[name], terms[name], rtol=1e-4, err_msg=name)
    assert float(tf.norm(tiled_gradient - gradient) / tf.norm(gradient)) < 1e-4
    assert float(tf.reduce_max(tf.abs(tiled_gradient - gradient)) / tf.reduce_max(tf.abs(gradient))) < 1e-4


@pytest.mark.slow
def test_ten_tiled_adam_steps_stay_within_a_level_and_a_half_of_the_untiled_ones(extractor):
    """At a learning rate of 1 (measured: 1.23 levels with ImageNet's VGG19, 0.73 with hed's VGG16). At the default
    5 the dynamics amplify rounding, tiled or not: measured, a change of 1e-5 (about one float32 step at 255) in
    the untiled run's start image moved its image by up to 2.3 levels after 10 steps, and tiling (whose sums
    differ from the untiled ones by about 1e-7) by 3.4. Adam's first steps move a pixel by about the learning rate
    whatever its gradient's size, and a max pooling that picks another pixel of a near tie sends that pixel's
    gradient elsewhere."""
    config = StyleConfig(optimizer="adam", learning_rate=1.0)
    targets, tiled_targets, grid, start = _problem(extractor, config)
    untiled = Optimization(extractor, targets, start, config)
    tiled = Optimization(extractor, tiled_targets, start, config, tiles=grid)
    untiled.run(10)
    progress = []

    class TileRecorder:
        def __call__(self, report):
            pass

        def on_tile(self, tile_progress):
            progress.append((tile_progress.step, tile_progress.tiles_done, tile_progress.tiles_per_step))

    tiled.run(10, callbacks=[TileRecorder()])
    assert np.abs(untiled.image.numpy() - tiled.image.numpy()).max() <= 1.5
    assert np.abs(untiled.result() - tiled.result()).max() <= 1.5
    assert progress[:23] == [(1, done, 23) for done in range(1, 24)] and progress[-1] == (10, 23, 23)


@pytest.mark.slow
def test_the_tiled_gradient_of_a_scaled_loss_is_the_scaled_untiled_gradient(extractor):
    """Loss scaling (mixed_float16's optimizer) multiplies the tiles' terms and TV alike, or the image would follow
    the unscaled term's pull (Adam's steps do not depend on the gradient's overall scale, only on its mix). TV
    weighted up, so that its share of the gradient shows."""
    config = StyleConfig(tv_weight=1000.0)
    targets, tiled_targets, grid, start = _problem(extractor, config)
    image = tf.Variable(start)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(objective_for(config).losses(extractor, image, targets)["total"])
    gradient = tape.gradient(total, image)
    _, scaled_gradient = TiledObjective(extractor, objective_for(config), grid).losses_and_gradient(
        image, tiled_targets, loss_scale=1024.0)
    assert float(tf.norm(scaled_gradient - 1024.0 * gradient) / tf.norm(1024.0 * gradient)) < 1e-4


@pytest.mark.slow
def test_a_tiled_mixed_float16_run_follows_the_untiled_one():
    """float16 rounds the features and gradients of the two runs differently (the tiles' sums are added in another
    order). No single pixel has a bound smaller than what Adam allows any pixel: its first steps move each pixel by
    about the learning rate whichever way its gradient points, so a pixel whose gradient is within rounding of
    zero may go either way, and which pixels those are depends on the CPU's kernels (measured: 1.2 levels apart
    at most on an AVX2 CPU, 1.9 on an AMX one, 3.2 on an AVX-512 BF16 one). So the bound on a pixel is the one
    Adam gives, 2 x steps x learning rate, and what is held is the mean: the tiled run moves the image as the
    untiled one does, its mean difference a small fraction of the mean movement (measured 0.4% on AVX2). A tiled
    step that got a term wrong moves every pixel differently."""
    content, style = gradient_image(96, 128), stripes_image(96, 96)
    steps, learning_rate = 4, 1.0
    options = dict(size=128, initial_size=0, steps=steps, precision="mixed_float16", optimizer="adam",
                   learning_rate=learning_rate)
    untiled = tf_style.stylize(content, style, **options)
    tiled = tf_style.stylize(content, style, tile_size=64, **options)
    assert np.isfinite(tiled).all()
    difference = np.abs(untiled - tiled)
    assert difference.max() <= 2 * steps * learning_rate
    assert difference.mean() <= 0.05 * np.abs(untiled - content.astype(np.float32)).mean()


@pytest.mark.parametrize("precision", ["float32", pytest.param("mixed_float16", marks=pytest.mark.slow)])
def test_tiled_steps_trace_their_functions_once(precision):
    """Loss scaling (mixed_float16) changes its scale as it goes; the tiled step takes it as a tensor, since the
    optimizer's `scale_loss` method passed to a traced function made it trace again at every step."""
    config = StyleConfig(precision=precision)
    extractor = extractor_for(config, precision)
    content = gradient_image(HEIGHT // 2, WIDTH // 2)
    grid = tiles.tile_grid(HEIGHT // 2, WIDTH // 2, 64, tiles.margin_of(config))
    statistics = style_statistics(extractor, [stripes_image(96, 96)], config)
    targets = batch_targets(extractor, content[None], [statistics], config, grid)
    optimization = Optimization(extractor, targets, content[None].astype(np.float32), config, tiles=grid)
    optimization.run(3)
    objective = optimization._tiled_objective
    assert objective._last_tile.experimental_get_tracing_count() == 1
    assert objective._tile_sums.experimental_get_tracing_count() == 1
    assert objective._tile_gradient.experimental_get_tracing_count() == 1


def test_the_progress_of_a_step_names_the_pass_and_the_tile():
    """4 tiles: the statistics pass runs all four, the gradient pass the three that did not differentiate."""
    described = [TileProgress(1, 1, done, 7, 0.0).describe() for done in range(1, 8)]
    assert described == [f"statistics pass, tile {tile}/4" for tile in range(1, 5)] + [
        f"gradient pass, tile {tile}/3" for tile in range(1, 4)]


# ---------------------------------------------------------------------------------------------------------
# Runs.

@pytest.mark.slow
def test_a_tiled_run_says_so_and_tiles_only_the_scales_larger_than_a_tile():
    lines = []
    content, style = gradient_image(96, 128), stripes_image(96, 96)
    options = dict(size=128, initial_size=64, initial_steps=2, steps=2, precision="float32")
    untiled = tf_style.stylize(content, style, **options)
    tiled = tf_style.stylize(content, style, tile_size=64, log=lines.append, **options)
    assert "tf_style: tiled: 2 × 2 tiles of 64 px + 80 px margin at 128x96 (the scales from 91 px run in tiles, " \
           "the same loss and gradient as untiled)" in lines
    assert tiled.shape == untiled.shape
    assert np.abs(tiled - untiled).mean() < 0.5


def test_a_style_larger_than_a_tile_gives_the_untiled_statistics(extractor):
    config = StyleConfig()
    style = stripes_image(200, 150)
    untiled = style_statistics(extractor, [style], config)
    tiled = style_statistics(extractor, [style], config, tile_size=64)
    for name in config.style_layers:
        np.testing.assert_allclose(tiled.grams[name], untiled.grams[name], rtol=1e-4,
                                   atol=1e-5 * np.abs(untiled.grams[name]).max())
