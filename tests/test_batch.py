"""Batch runs: the API's batch form, the batched train step, the batch command line and TensorBoard events."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import tf_style
from programs import stylize as run_cli
from conftest import gradient_image, stripes_image
from tf_style import api, memory
from tf_style.callbacks import TensorBoardLogger
from tf_style.errors import DivergedError, UsageError
from tf_style.network import vgg
from tf_style.objective.terms import Objective
from tf_style.optimization import coarse_to_fine
from tf_style.optimization.level import StepReport
from tf_style.optimization.pyramid import pyramid_of
from tf_style.tiling.tiled_objective import TileProgress

FAST = dict(size=64, steps=3, initial_size=0, precision="float32", progress_every=1)


@pytest.mark.slow
def test_batch_results_come_in_input_order_and_a_bad_pair_fails_alone():
    wide, tall, style = gradient_image(48, 64), gradient_image(64, 48, seed=1), stripes_image(64, 64)
    tiny = np.zeros((4, 4, 3), np.float32)
    logged = []
    results = tf_style.stylize_batch([(wide, style), (tall, style), (tiny, style), (wide[::-1], style)],
                                     log=logged.append, **FAST)
    assert [result.index for result in results] == [0, 1, 2, 3]
    assert [None if result.image is None else result.image.shape for result in results] == [
        (48, 64, 3), (64, 48, 3), None, (48, 64, 3)]
    assert isinstance(results[2].error, UsageError) and "at least 16" in str(results[2].error)
    # The two 64x48 results share one train step; the 48x64 one has its own.
    assert [line.split(":")[0] for line in logged if line.startswith("stylizing")] == [
        "stylizing 2 images at 64x48", "stylizing 1 image at 48x64"]


@pytest.mark.slow
def test_a_diverging_image_fails_alone_and_the_others_of_its_batch_finish(monkeypatch):
    original = Objective.losses

    def non_finite_for_bright_images(self, extractor, images, targets, weights=None):
        terms = original(self, extractor, images, targets, weights)
        bright = tf.reduce_mean(images, axis=[1, 2, 3]) > 200
        return {**terms, "total": tf.where(bright, float("nan"), terms["total"])}

    monkeypatch.setattr(Objective, "losses", non_finite_for_bright_images)
    dark, bright, style = gradient_image(48, 64), np.full((48, 64, 3), 250.0, np.float32), stripes_image(64, 64)
    logged = []
    results = tf_style.stylize_batch([(dark, style), (bright, style), (dark[::-1], style)], log=logged.append,
                                     **FAST)
    assert [result.error is None for result in results] == [True, False, True]
    assert isinstance(results[1].error, DivergedError) and results[1].image is None  # no step was finite
    np.testing.assert_allclose(results[0].image, tf_style.stylize(dark, style, log=None, **FAST), atol=0.5)
    assert any("running the 3 images of its batch one at a time" in line for line in logged)


@pytest.mark.slow
def test_the_command_line_reports_the_diverged_pair_and_writes_the_others(monkeypatch, tmp_path):
    original = Objective.losses
    monkeypatch.setattr(Objective, "losses", lambda self, extractor, images, targets, weights=None: {
        **(terms := original(self, extractor, images, targets, weights)),
        "total": tf.where(tf.reduce_mean(images, axis=[1, 2, 3]) > 200, float("nan"), terms["total"])})
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(gradient_image(48, 64).astype(np.uint8)).save(photos / "dark.png")
    Image.fromarray(np.full((48, 64, 3), 250, np.uint8)).save(photos / "bright.png")
    Image.fromarray(stripes_image(64, 64).astype(np.uint8)).save(tmp_path / "style.png")
    result = run_cli(f"--content={photos}", f"--style={tmp_path / 'style.png'}", f"--output_dir={tmp_path / 'out'}",
                     "--size=64", "--steps=2", "--initial_size=0")
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith(f"tf_style: skipped {photos / 'bright.png'} × {tmp_path / 'style.png'}: "
                                    "the optimization diverged at step")
    assert sorted(os.listdir(tmp_path / "out")) == ["dark__style.png"]


def _out_of_memory_above(batch_size: int):
    """An `Objective.losses` that fails as TensorFlow's allocator does when a step holds more than `batch_size`
    images (raised while the step is traced, which the caller meets as it would meet the op's error)."""
    original = Objective.losses

    def losses(self, extractor, images, targets, weights=None):
        if images.shape[0] > batch_size:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[...]")
        return original(self, extractor, images, targets, weights)

    return losses


@pytest.mark.slow
def test_a_batch_that_runs_out_of_memory_runs_one_image_at_a_time(monkeypatch):
    monkeypatch.setattr(Objective, "losses", _out_of_memory_above(1))
    contents, style = [gradient_image(48, 64, seed=seed) for seed in range(3)], stripes_image(64, 64)
    logged = []
    results = tf_style.stylize_batch([(content, style) for content in contents], log=logged.append, **FAST)
    assert all(result.error is None and result.image.shape == (48, 64, 3) for result in results)
    assert any(line.startswith("the device ran out of memory for 3 images of 64x48 at once")
               and line.endswith("running the 3 images of its batch one at a time") for line in logged)


def test_the_command_line_says_a_run_that_does_not_fit_in_memory_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(Objective, "losses", _out_of_memory_above(0))
    Image.fromarray(gradient_image(48, 64).astype(np.uint8)).save(tmp_path / "photo.png")
    Image.fromarray(stripes_image(64, 64).astype(np.uint8)).save(tmp_path / "style.png")
    output = tmp_path / "out.png"
    result = run_cli(f"--content={tmp_path / 'photo.png'}", f"--style={tmp_path / 'style.png'}",
                     f"--output={output}", "--size=64", "--steps=2", "--initial_size=0")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "tf_style: error: the device ran out of memory for 1 image of 64x48 at once (step 1 or after): use a smaller "
        "--size, or free the memory that other processes hold"]
    assert not output.exists()


@pytest.mark.slow
def test_a_batched_result_is_the_result_alone():
    contents = [gradient_image(48, 64, seed=seed) for seed in range(3)]
    styles = [stripes_image(64, 64), gradient_image(64, 64, seed=7), stripes_image(64, 64)[::-1]]
    batched = tf_style.stylize_batch(list(zip(contents, styles)), log=None, **FAST)
    for content, style, result in zip(contents, styles, batched):
        alone = tf_style.stylize(content, style, log=None, **FAST)
        np.testing.assert_allclose(result.image, alone, atol=0.5)
    assert not np.allclose(batched[0].image, batched[2].image, atol=5)


@pytest.mark.slow
def test_reports_name_their_pair_and_batches_respect_batch_size():
    content, style = gradient_image(48, 64), stripes_image(64, 64)
    reports, logged = [], []
    tf_style.stylize_batch([(content, style)] * 3, callbacks=[reports.append], log=logged.append, batch_size=2,
                           **FAST)
    assert [(report.step, report.index) for report in reports] == [
        (1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1), (1, 2), (2, 2), (3, 2)]
    assert len([line for line in logged if line.startswith("stylizing")]) == 2


@pytest.mark.slow
def test_batches_of_one_shape_share_one_trace_and_start_afresh():
    contents = [gradient_image(48, 64, seed=seed) for seed in range(3)]
    style = stripes_image(64, 64)
    stylizer = api.Stylizer(batch_size=1, log=None, **FAST)
    results = stylizer.stylize_batch([(content, style) for content in contents])
    [optimization] = stylizer.coarse_to_fine.optimizations._by_shape.values()
    assert optimization.train_step.experimental_get_tracing_count() == 1
    # The third batch restarted the first one's optimization: it must end where a fresh one does.
    np.testing.assert_allclose(results[2].image, tf_style.stylize(contents[2], style, log=None, **FAST), atol=0.5)


@pytest.mark.slow
def test_style_statistics_are_computed_once_per_style_and_scale(monkeypatch, tmp_path):
    paths = []
    for name, image in (("a.png", stripes_image(64, 64)), ("b.png", gradient_image(64, 64))):
        paths.append(str(tmp_path / name))
        Image.fromarray(image.astype(np.uint8)).save(paths[-1])
    calls = []
    original = coarse_to_fine.style_statistics
    monkeypatch.setattr(coarse_to_fine, "style_statistics", lambda *args, **kwargs: calls.append(1) or original(
        *args, **kwargs))
    styles = [*paths, stripes_image(48, 48)]  # files are known by path, arrays by identity
    contents = [gradient_image(48, 64), gradient_image(64, 48)]
    options = {**FAST, "initial_size": 32, "initial_steps": 1, "steps": 1}
    results = tf_style.stylize_batch([(content, style) for content in contents for style in styles], log=None,
                                     **options)
    assert all(result.error is None for result in results)
    # Two sizes of content, so two batches; but each style's statistics are computed once at each scale.
    assert len(calls) == len(styles) * len(pyramid_of(tf_style.StyleConfig(**options))) == 3 * 3


def test_memory_limits_the_batch():
    layers = tf_style.StyleConfig().content_layers + tf_style.StyleConfig().style_layers
    one = memory.estimate_peak_bytes(384, 512, vgg.VGG16, layers, "bfloat16")
    three = memory.estimate_peak_bytes(384, 512, vgg.VGG16, layers, "bfloat16", batch_size=3)
    assert three - memory.BASE_BYTES == pytest.approx(3 * (one - memory.BASE_BYTES))
    assert memory.largest_batch_that_fits(384, 512, [], vgg.VGG16, layers, "mixed_bfloat16", 8, available=three) == 3
    assert memory.largest_batch_that_fits(384, 512, [], vgg.VGG16, layers, "mixed_bfloat16", 8, available=one // 2) == 1


def test_checkpoints_are_for_one_pair():
    with pytest.raises(UsageError, match="a batch run resumes by skipping"):
        api.Stylizer(checkpoint_dir="/tmp/unused", log=None, **FAST).stylize_batch(
            [(gradient_image(48, 64), stripes_image(64, 64))] * 2)


def _event_tags(directory: str) -> set:
    tags = set()
    for name in os.listdir(directory):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(directory, name)):
            tags.update(value.tag for value in event.summary.value)
    return tags


def test_tensorboard_events_hold_the_losses_speed_and_images(tmp_path):
    logger = TensorBoardLogger(str(tmp_path / "run"), image_every=2)
    image = gradient_image(48, 64)
    for step in (1, 2, 3):
        logger(StepReport(step, 3, {"total": 3.0, "content": 1.0, "style": 1.5, "tv": 0.5}, image, step * 0.5))
    assert _event_tags(str(tmp_path / "run")) == {"loss/total", "loss/content", "loss/style", "loss/tv",
                                                  "steps_per_second", "image"}


def test_a_tiled_step_shows_its_tiles_in_tensorboard(tmp_path):
    logger = TensorBoardLogger(str(tmp_path / "run"))
    for done in range(1, 5):
        logger.on_tile(TileProgress(step=2, num_steps=3, tiles_done=done, tiles_per_step=4, elapsed_seconds=done))
    assert _event_tags(str(tmp_path / "run")) == {"step_fraction_done"}


def _save(path, image) -> str:
    Image.fromarray(image.astype(np.uint8)).save(path)
    return str(path)


@pytest.mark.slow
def test_the_command_line_runs_a_folder_reports_a_bad_file_and_skips_finished_pairs(tmp_path):
    photos, styles, out = tmp_path / "photos", tmp_path / "styles", tmp_path / "out"
    photos.mkdir()
    styles.mkdir()
    _save(photos / "a.png", gradient_image(48, 64))
    _save(photos / "b.png", gradient_image(48, 64, seed=2))
    _save(photos / "c.png", gradient_image(64, 48, seed=3))
    (photos / "broken.jpg").write_bytes(b"not a picture")
    _save(styles / "stripes.png", stripes_image(64, 64))
    _save(styles / "smooth.png", gradient_image(64, 64, seed=4))
    args = [f"--content={photos}", f"--style={styles / '*.png'}", f"--output_dir={out}", "--size=64", "--steps=2",
            "--initial_size=0", f"--logdir={tmp_path / 'logs'}"]
    first = run_cli(*args)
    assert first.returncode == 3, first.stderr
    expected = sorted(f"{photo}__{style}.png" for photo in "abc" for style in ("smooth", "stripes"))
    assert sorted(os.listdir(out)) == expected
    skipped = [line for line in first.stderr.splitlines() if "skipped" in line]
    assert len(skipped) == 2 and "broken.jpg is not a readable image" in skipped[0] and "as above" in skipped[1]
    assert "wrote 6 results" in first.stdout and "2 failed" in first.stdout
    assert sorted(os.listdir(tmp_path / "logs")) == [name[:-4] for name in expected]
    assert {"loss/total", "loss/style", "steps_per_second", "image"} <= _event_tags(
        str(tmp_path / "logs" / "a__smooth"))

    modified = {name: os.path.getmtime(out / name) for name in expected}
    again = run_cli(*args)
    assert again.returncode == 3 and "skipping 6 of 8 pairs whose results exist" in again.stdout
    assert {name: os.path.getmtime(out / name) for name in expected} == modified

    os.remove(photos / "broken.jpg")
    redone = run_cli(*args, "--overwrite", "--batch_size=1")
    assert redone.returncode == 0, redone.stderr
    assert all(os.path.getmtime(out / name) > modified[name] for name in expected)


def test_the_command_line_takes_a_pairs_file(tmp_path):
    _save(tmp_path / "photo.png", gradient_image(48, 64))
    _save(tmp_path / "painting.png", stripes_image(64, 64))
    (tmp_path / "pairs.txt").write_text("# content,style\nphoto.png,painting.png\n")
    result = run_cli(f"--pairs={tmp_path / 'pairs.txt'}", f"--output_dir={tmp_path / 'out'}", "--size=64",
                     "--steps=2", "--initial_size=0", "--contact_sheet")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["photo__painting.png", "photo__painting_sheet.png"]
