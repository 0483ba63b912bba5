"""The train step: it lowers the loss, traces once, keeps the image valid; targets and start images."""

import numpy as np
import pytest
import tensorflow as tf

from conftest import gradient_image, stripes_image
from tf_style.config import StyleConfig
from tf_style.errors import DivergedError
from tf_style.network import device
from tf_style.network.features import extractor_for
from tf_style.objective import losses
from tf_style.objective.targets import compute_targets
from tf_style.objective.terms import objective_for
from tf_style.optimization import core
from tf_style.optimization.level import Optimization
from tf_style.optimization.pyramid import resize_image, upsample_with_detail

CONFIG = StyleConfig(size=64, steps=12, optimizer="adam", learning_rate=4.0, progress_every=4)


@pytest.fixture(scope="module")
def targets(extractor):
    return compute_targets(extractor, gradient_image(48, 64), stripes_image(64, 64), CONFIG)


def test_targets_have_the_layers_and_gram_shapes(targets):
    assert list(targets["content"]) == ["block4_conv2"]
    assert {name: tuple(gram.shape) for name, gram in targets["style"]["grams"].items()} == {
        "block1_conv1": (1, 64, 64), "block2_conv1": (1, 128, 128), "block3_conv1": (1, 256, 256),
        "block4_conv1": (1, 512, 512), "block5_conv1": (1, 512, 512)}


def test_steps_lower_the_loss_and_trace_once(extractor, targets):
    optimization = Optimization(extractor, targets, gradient_image(48, 64)[None], CONFIG)
    reports = []
    result = optimization.run(CONFIG.steps, callbacks=[reports.append])
    assert [report.step for report in reports] == [4, 8, 12]
    assert reports[-1].losses["total"] < reports[0].losses["total"]
    assert optimization.train_step.experimental_get_tracing_count() == 1
    assert result.shape == (1, 48, 64, 3) and result.dtype == np.float32
    assert result.min() >= 0.0 and result.max() <= 255.0
    np.testing.assert_array_equal(result[0], reports[-1].image)


def test_reported_losses_add_up(extractor, targets):
    optimization = Optimization(extractor, targets, gradient_image(48, 64)[None], CONFIG)
    report = []
    optimization.run(1, callbacks=[report.append])
    losses_now = report[0].losses
    assert set(losses_now) == {"content", "style", "tv", "palette", "total"}
    assert losses_now["total"] == pytest.approx(sum(value for name, value in losses_now.items() if name != "total"),
                                                rel=1e-5)


def test_the_palette_term_is_left_out_at_weight_0_and_with_regions():
    assert "palette" in objective_for(CONFIG).names
    assert "palette" not in objective_for(CONFIG.replace(palette_weight=0)).names
    masks = (np.ones([48, 64], np.float32),)
    assert "palette" not in objective_for(CONFIG.replace(content_masks=masks)).names


@pytest.mark.slow
def test_the_palette_term_takes_the_paintings_colours_where_the_style_term_alone_does_not(extractor):
    """A grey photo under red stripes: ImageNet's network keeps the grey (docs/network.md); the palette term
    turns it towards the stripes' red."""
    grey = np.full([48, 64, 3], 128.0, np.float32) + gradient_image(48, 64) * 0.1
    red_stripes = stripes_image(64, 64) * np.array([1.0, 0.2, 0.2], np.float32)
    redness = {}
    for palette_weight in (0.0, CONFIG.palette_weight):
        config = CONFIG.replace(palette_weight=palette_weight)
        targets = compute_targets(extractor, grey, red_stripes, config)
        optimization = Optimization(extractor, targets, grey[None], config)
        result = optimization.run(30)[0]
        redness[palette_weight] = float(np.mean(result[..., 0] - result[..., 1:].mean(axis=-1)))
    assert redness[CONFIG.palette_weight] > redness[0.0] + 10


def test_content_start_has_zero_content_loss_before_the_first_step(extractor, targets):
    content = gradient_image(48, 64)
    features = extractor(content[None])
    loss = losses.content_loss(features, targets["content"])
    np.testing.assert_allclose(loss.numpy(), [0.0], atol=1e-6)


def test_divergence_raises_with_the_last_finite_image(extractor, targets):
    start = gradient_image(48, 64)
    optimization = Optimization(extractor, targets, start[None], CONFIG.replace(progress_every=1))
    seen = []

    def poison_after_first_step(report):
        seen.append(report.image)
        optimization.image.assign(tf.fill(optimization.image.shape, float("nan")))

    with pytest.raises(DivergedError, match="smaller --learning_rate") as raised:
        optimization.run(3, callbacks=[poison_after_first_step])
    assert raised.value.step == 2
    np.testing.assert_array_equal(raised.value.image[0], seen[0])


@pytest.mark.slow
def test_warm_start_carries_adams_moments_rescaled_to_the_larger_scale(extractor, targets):
    small_targets = compute_targets(extractor, gradient_image(24, 32), stripes_image(32, 32), CONFIG)
    small = Optimization(extractor, small_targets, gradient_image(24, 32)[None], CONFIG)
    small.run(3)
    small_state = small.optimizer_variables
    small_state.first_moment.assign(tf.fill(small_state.first_moment.shape, 0.5))
    small_state.second_moment.assign(tf.fill(small_state.second_moment.shape, 0.25))
    large = Optimization(extractor, targets, gradient_image(48, 64)[None], CONFIG)
    large.warm_start(core.Adam(1.0).carried_up(small.optimizer_state(), 48, 64))
    # Four times the pixels: a mean loss's gradient per pixel is a quarter, its square a sixteenth.
    large_state = large.optimizer_variables
    np.testing.assert_allclose(large_state.first_moment.numpy(), np.full((1, 48, 64, 3), 0.5 / 4), rtol=1e-5)
    np.testing.assert_allclose(large_state.second_moment.numpy(), np.full((1, 48, 64, 3), 0.25 / 16), rtol=1e-5)
    assert int(large_state.iterations.numpy()) == 3
    large.run(2)
    assert int(large_state.iterations.numpy()) == 5 and large.train_step.experimental_get_tracing_count() == 1


def test_compute_plan_follows_the_cpu(monkeypatch, tmp_path):
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind: [])
    monkeypatch.setattr(device, "cpu_has_fast_bfloat16", lambda: True)
    assert device.plan_compute().dtype_policy == "mixed_bfloat16"
    assert device.plan_compute().jit_compile is False
    monkeypatch.setattr(device, "cpu_has_fast_bfloat16", lambda: False)
    assert device.plan_compute().dtype_policy == "float32"
    assert device.plan_compute("mixed_float16", "true").dtype_policy == "mixed_float16"
    assert device.plan_compute("auto", "true").jit_compile is True


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags : fpu sse avx512f avx512_bf16\n")
    assert device.cpu_has_fast_bfloat16(str(cpuinfo))
    cpuinfo.write_text("processor : 0\nflags : fpu sse avx2\n")
    assert not device.cpu_has_fast_bfloat16(str(cpuinfo))
    assert not device.cpu_has_fast_bfloat16(str(tmp_path / "missing"))


def test_onednn_held_below_bfloat16_is_a_cpu_without_it(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags : fpu sse avx512f avx512_bf16\n")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    assert not device.cpu_has_fast_bfloat16(str(cpuinfo))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert device.cpu_has_fast_bfloat16(str(cpuinfo))


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_both_precisions_lower_the_loss(precision):
    extractor = extractor_for(CONFIG, precision)
    targets = compute_targets(extractor, gradient_image(48, 64), stripes_image(64, 64), CONFIG)
    optimization = Optimization(extractor, targets, gradient_image(48, 64)[None], CONFIG)
    reports = []
    optimization.run(8, callbacks=[reports.append])  # CONFIG reports every 4 steps
    assert reports[-1].losses["total"] < reports[0].losses["total"]


def test_upsampling_with_detail_restores_what_the_smaller_size_lost():
    # A result that is the detail source at the smaller size gets exactly the source at the larger size
    # back; a smoother result keeps its own colours and gains the source's fine detail.
    source = np.random.default_rng(0).uniform(0.0, 255.0, (1, 48, 64, 3)).astype(np.float32)
    small = resize_image(source, 24, 32)
    np.testing.assert_allclose(upsample_with_detail(small, source, 36, 48), resize_image(source, 36, 48),
                               atol=1e-3)
    flat = np.full_like(small, 128.0)
    upsampled = upsample_with_detail(flat, source, 36, 48).numpy()
    assert upsampled.shape == (1, 36, 48, 3)
    assert abs(upsampled.mean() - 128.0) < 4.0
    assert upsampled.std() > 0.5 * resize_image(source, 36, 48).std()
