"""tf_style.stylize and its controls: inputs in every form, scales, averaging, blends, colours, starts."""

import numpy as np
import pytest
from PIL import Image

import tf_style
from conftest import gradient_image, stripes_image
from tf_style import color
from tf_style.config import StyleConfig
from tf_style.objective.losses import gram_matrix
from tf_style.objective.targets import compute_targets
from tf_style.optimization.level import Optimization
from tf_style.optimization.pyramid import pyramid_of

FAST = dict(size=64, steps=3, progress_every=1, log=None)


@pytest.mark.slow
def test_accepts_paths_pil_images_and_arrays(content_path, style_path):
    from_paths = tf_style.stylize(content_path, style_path, seed=0, **FAST)
    from_objects = tf_style.stylize(Image.open(content_path), np.asarray(Image.open(style_path)), seed=0, **FAST)
    assert from_paths.shape == (48, 64, 3) and from_paths.dtype == np.float32
    np.testing.assert_allclose(from_paths, from_objects, atol=1.0)


# Two scales each (the second at most sqrt(2) times the first): every scale is a trace of its own.
@pytest.mark.slow
@pytest.mark.parametrize("content_shape, size, initial_size", [((31, 50), 46, 33), ((50, 31), 39, 28)])
def test_coarse_to_fine_returns_the_asked_size(content_shape, size, initial_size):
    reports = []
    result = tf_style.stylize(gradient_image(*content_shape), stripes_image(40, 40), size=size,
                              initial_size=initial_size, steps=2, progress_every=1, log=None,
                              callbacks=[reports.append])
    height, width = content_shape
    scale = size / max(height, width)
    assert result.shape == (round(height * scale), round(width * scale), 3)
    assert reports[-1].num_scales == len(pyramid_of(StyleConfig(size=size, initial_size=initial_size))) > 1
    assert max(reports[0].image.shape[:2]) == initial_size
    assert [report.step for report in reports] == list(range(1, reports[-1].num_steps + 1))


@pytest.mark.slow
def test_steps_per_scale_fall_from_initial_steps_to_steps():
    reports = []
    tf_style.stylize(gradient_image(48, 64), stripes_image(40, 40), size=64, initial_size=32, steps=2,
                     initial_steps=8, progress_every=1, log=None, callbacks=[reports.append])
    steps_per_scale = [sum(1 for r in reports if r.scale_index == index) for index in range(3)]
    assert steps_per_scale == [8, 4, 2]


def test_original_colors_keep_the_contents_chroma():
    content = gradient_image(48, 64)
    result = tf_style.stylize(content, stripes_image(64, 64), original_colors=True, **FAST)
    content_yuv, result_yuv = color.rgb_to_yuv(content), color.rgb_to_yuv(result)
    unclipped = np.all((result > 1) & (result < 254), axis=-1)
    assert unclipped.mean() > 0.5
    np.testing.assert_allclose(result_yuv[unclipped][:, 1:], content_yuv[unclipped][:, 1:], atol=0.5)


def test_an_interrupted_run_carries_its_image_with_the_original_colors():
    content = gradient_image(48, 64)

    def interrupt_at_the_second_step(report):
        if report.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(tf_style.Interrupted) as raised:
        tf_style.stylize(content, stripes_image(64, 64), original_colors=True,
                         callbacks=[interrupt_at_the_second_step], **FAST)
    image = raised.value.image
    unclipped = np.all((image > 1) & (image < 254), axis=-1)
    np.testing.assert_allclose(color.rgb_to_yuv(image)[unclipped][:, 1:],
                               color.rgb_to_yuv(content)[unclipped][:, 1:], atol=0.5)


def test_blend_weights_blend_the_gram_targets(extractor):
    config = StyleConfig(style_layers=("block1_conv1", "block2_conv1"))
    first, second = stripes_image(32, 32), gradient_image(32, 32)
    blended = compute_targets(extractor, first, [first, second], config, blend_weights=(3, 7))
    for name in config.style_layers:
        expected = (0.3 * gram_matrix(extractor(first[None])[name])
                    + 0.7 * gram_matrix(extractor(second[None])[name]))
        np.testing.assert_allclose(blended["style"]["grams"][name].numpy(), expected.numpy(), rtol=1e-4)


def test_blend_weights_must_match_the_styles():
    with pytest.raises(tf_style.UsageError, match="one weight per style image"):
        tf_style.stylize(gradient_image(32, 32), [stripes_image(32, 32)] * 2, style_blend_weights=(1, 2, 3),
                         **FAST)


def _optimization(extractor, average_decay: float) -> Optimization:
    config = StyleConfig(size=64, optimizer="adam", average_decay=average_decay)
    content = gradient_image(48, 64)
    return Optimization(extractor, compute_targets(extractor, content, stripes_image(64, 64), config), content[None],
                        config)


def test_the_output_is_the_bias_corrected_average(extractor):
    optimization = _optimization(extractor, average_decay=0.9)
    targets = optimization.targets
    iterates = []
    for _ in range(3):
        optimization.train_step(targets)
        iterates.append(optimization.image[0].numpy())
    # EMA from zero: 0.1 * (0.81 x1 + 0.9 x2 + x3), divided by 1 - 0.9^3 to undo the pull towards zero.
    expected = 0.1 * (0.81 * iterates[0] + 0.9 * iterates[1] + iterates[2]) / (1 - 0.9 ** 3)
    np.testing.assert_allclose(optimization.result()[0], np.clip(expected, 0, 255), atol=1e-3)
    assert not np.allclose(optimization.result()[0], iterates[-1], atol=1e-3)
    reports = []
    final = optimization.run(1, callbacks=[reports.append])
    np.testing.assert_array_equal(final[0], reports[-1].image)
    np.testing.assert_array_equal(final, optimization.result())


def test_no_averaging_outputs_the_last_iterate(extractor):
    optimization = _optimization(extractor, average_decay=0.0)
    final = optimization.run(2)
    np.testing.assert_array_equal(final, optimization.image.numpy())


@pytest.mark.slow
@pytest.mark.parametrize("style_loss, padding", [("wasserstein", "reflect"), ("gram", "zero")])
def test_other_losses_and_paddings_run(style_loss, padding):
    result = tf_style.stylize(gradient_image(48, 64), stripes_image(64, 64), style_loss=style_loss,
                              padding=padding, **FAST)
    assert result.shape == (48, 64, 3) and np.isfinite(result).all()


@pytest.mark.slow
def test_style_scale_changes_the_result():
    content, style = gradient_image(48, 64), stripes_image(96, 96)
    small = tf_style.stylize(content, style, style_scale=0.5, seed=0, **FAST)
    large = tf_style.stylize(content, style, style_scale=2.0, seed=0, **FAST)
    assert np.abs(small - large).mean() > 0.1


def test_a_size_beyond_memory_is_refused_before_any_resizing(monkeypatch):
    from tf_style import images, memory

    def no_resizing(*args, **kwargs):
        raise AssertionError("resized before the memory check")

    monkeypatch.setattr(memory, "available_bytes", lambda: 2 << 30)
    monkeypatch.setattr(images, "resize", no_resizing)
    with pytest.raises(tf_style.UsageError, match="GB of memory"):
        tf_style.stylize(gradient_image(48, 64), stripes_image(64, 64), size=40000, precision="float32", log=None)


# 40:1 is too thin at every scale; at --style_scale=0.1 the style is 16 px at the last scale, 8 at the first.
@pytest.mark.slow
@pytest.mark.parametrize("style_shape, options", [((16, 640), {"initial_size": 0}),
                                                  ((64, 64), {"style_scale": 0.1, "initial_size": 32})])
def test_very_wide_and_very_small_styles_are_seen_upscaled(style_shape, options):
    logged = []
    result = tf_style.stylize(gradient_image(48, 64), stripes_image(*style_shape), size=64, initial_steps=2,
                              steps=2, progress_every=1, log=logged.append, **options)
    assert result.shape == (48, 64, 3) and np.isfinite(result).all()
    assert any("is seen upscaled to 16 px on its short side" in line for line in logged)
