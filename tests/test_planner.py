"""tf_style.planner: what a run will be before it runs (sizes, tiles, batches, starts), and the `Batch` it makes,
which `CoarseToFine` runs to the same result as `stylize()`."""

import numpy as np
import pytest
from PIL import Image

import tf_style
from conftest import gradient_image, stripes_image
from tf_style import api
from tf_style.config import StyleConfig
from tf_style.planner import batch_of, start_image

FAST = dict(size=64, steps=3, initial_size=0, progress_every=1)


def test_a_pair_is_planned_from_the_headers_and_prepared_at_those_sizes(tmp_path):
    content_path, style_path = tmp_path / "photo.png", tmp_path / "painting.png"
    Image.fromarray(gradient_image(90, 120).astype(np.uint8)).save(content_path)
    Image.fromarray(stripes_image(200, 100).astype(np.uint8)).save(style_path)
    planner = api.Stylizer(log=None, **FAST).planner
    planned = planner.plan_pair(content_path, [style_path])
    assert (planned.height, planned.width, planned.style_shapes, planned.tile_size) == (48, 64, [(64, 32)], 0)
    prepared = planner.prepare(0, content_path, style_path, planned)
    assert prepared.content_image.shape == (48, 64, 3) and prepared.style_images[0].shape == (64, 32, 3)
    np.testing.assert_array_equal(prepared.start_image, prepared.content_image)


def test_a_batch_holds_one_size():
    planner = api.Stylizer(log=None, **FAST).planner
    style = stripes_image(64, 64)
    with pytest.raises(ValueError, match="one size"):
        planner.prepared_pairs([(gradient_image(48, 64), style), (gradient_image(64, 64), style)])


@pytest.mark.slow
def test_the_batch_of_prepared_pairs_runs_to_the_result_of_stylize():
    content, style = gradient_image(48, 64), stripes_image(64, 64)
    stylizer = api.Stylizer(log=None, seed=0, **FAST)
    batch = batch_of(stylizer.planner.prepared_pairs([(content, style), (content[:, ::-1], style)]))
    assert batch.content_images.shape == (2, 48, 64, 3) and list(batch.indices) == [0, 1]
    results = stylizer.coarse_to_fine.run(batch)
    np.testing.assert_allclose(results[0], tf_style.stylize(content, style, log=None, seed=0, **FAST), atol=0.5)


def test_the_optimization_at_a_level_starts_from_the_batch_at_that_size():
    stylizer = api.Stylizer(log=None, size=64, initial_size=32, steps=2, initial_steps=2)
    batch = batch_of(stylizer.planner.prepared_pairs([(gradient_image(48, 64), stripes_image(64, 64))]))
    runner = stylizer.coarse_to_fine
    first, last = runner.pyramid.levels[0], runner.pyramid.levels[-1]
    assert runner.optimization_at(first, batch).image.shape == (1, 24, 32, 3)
    optimization = runner.optimization_at(last, batch)
    np.testing.assert_allclose(optimization.image.numpy(), batch.start_images, atol=1e-4)
    assert set(optimization.targets) == set(runner.targets_at(last, batch))


@pytest.mark.parametrize("init", ["noise", "style_noise"])
def test_noise_starts_are_reproducible_with_a_seed(init):
    content, style = gradient_image(24, 32), stripes_image(32, 32)
    first = start_image(StyleConfig(init=init, seed=3), content, [style])
    again = start_image(StyleConfig(init=init, seed=3), content, [style])
    other = start_image(StyleConfig(init=init, seed=4), content, [style])
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.shape == content.shape and first.min() >= 0 and first.max() <= 255


def test_style_colors_start_has_the_styles_mean_colour():
    content, style = gradient_image(48, 64), stripes_image(64, 64)
    start = start_image(StyleConfig(init="style_colors"), content, [style])
    np.testing.assert_allclose(start.reshape(-1, 3).mean(0), style.reshape(-1, 3).mean(0), atol=6.0)


def test_init_from_a_file_is_resized_to_the_output(tmp_path):
    path = tmp_path / "start.png"
    Image.fromarray(np.full((100, 80, 3), 9, np.uint8)).save(path)
    start = start_image(StyleConfig(init=str(path)), gradient_image(48, 64), [stripes_image(32, 32)])
    assert start.shape == (48, 64, 3)
