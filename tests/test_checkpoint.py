"""Never lose work: interrupts and resuming, divergence, and checkpoint files that a kill cannot break."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import programs
import tf_style
from programs import REPO
from conftest import gradient_image, stripes_image
from tf_style.config import StyleConfig
from tf_style.errors import DivergedError, Interrupted, UsageError
from tf_style.objective.targets import compute_targets
from tf_style.optimization import checkpoint, coarse_to_fine
from tf_style.optimization.level import Optimization

# One scale unless a test asks for more: these tests must not follow the tuned defaults of the scales.
FAST = dict(size=64, initial_size=0, initial_steps=None, progress_every=1, log=None)


def _interrupt_at(step: int):
    """A callback that acts like Ctrl-C once the run reports `step`."""
    def callback(report):
        if report.step == step:
            raise KeyboardInterrupt
    return callback


# ---------------------------------------------------------------------------------------------------------
# Interrupt and resume, in process: a KeyboardInterrupt raised between steps stands for the signal.

_UNINTERRUPTED = {}  # results of uninterrupted runs, by options


@pytest.mark.slow
@pytest.mark.parametrize("options, stop_at", [
    (dict(steps=6), 2),
    (dict(steps=3, initial_size=32, initial_steps=3), 5),  # scales 32, 45, 64 px: in the middle of the second
    (dict(steps=3, initial_size=32, initial_steps=3), 3),  # at the end of the first scale, before the second starts
    (dict(steps=4, size=128, tile_size=64), 2),  # in tiles: 2 x 2 of 64 px
    # L-BFGS's history is checkpointed with the image: the resumed steps take the curvature the run had learnt.
    (dict(steps=3, initial_size=32, initial_steps=3, optimizer="lbfgs"), 5),
])
def test_a_resumed_run_ends_with_the_same_image_as_an_uninterrupted_one(tmp_path, options, stop_at):
    content, style = gradient_image(48, 64), stripes_image(64, 64)
    key = tuple(sorted(options.items()))
    if key not in _UNINTERRUPTED:
        _UNINTERRUPTED[key] = tf_style.stylize(content, style, **{**FAST, **options})
    uninterrupted = _UNINTERRUPTED[key]
    directory = str(tmp_path / "checkpoints")
    with pytest.raises(Interrupted) as raised:
        tf_style.stylize(content, style, checkpoint_dir=directory, checkpoint_every=100,
                         callbacks=[_interrupt_at(stop_at)], **{**FAST, **options})
    assert raised.value.step == stop_at
    assert raised.value.image.shape == uninterrupted.shape and np.isfinite(raised.value.image).all()
    saved = checkpoint.read_latest(directory)
    assert saved.step == stop_at
    reports = []
    resumed = tf_style.stylize(content, style, checkpoint_dir=directory, checkpoint_every=100,
                               callbacks=[reports.append], **{**FAST, **options})
    assert reports[0].step == stop_at + 1
    np.testing.assert_array_equal(resumed, uninterrupted)


def test_interrupt_before_the_first_step_carries_no_image(monkeypatch, tmp_path):
    def interrupted_while_preparing(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(coarse_to_fine, "batch_targets", interrupted_while_preparing)
    with pytest.raises(Interrupted) as raised:
        tf_style.stylize(gradient_image(48, 64), stripes_image(64, 64), steps=5,
                         checkpoint_dir=str(tmp_path / "checkpoints"), **FAST)
    assert raised.value.image is None and raised.value.step == 0
    assert checkpoint.read_latest(str(tmp_path / "checkpoints")) is None


@pytest.mark.slow
def test_interrupt_after_a_finished_scale_carries_that_scale_resized(monkeypatch):
    original = coarse_to_fine.batch_targets
    calls = []

    def interrupted_at_the_second_scale(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(coarse_to_fine, "batch_targets", interrupted_at_the_second_scale)
    with pytest.raises(Interrupted) as raised:
        tf_style.stylize(gradient_image(48, 64), stripes_image(64, 64),
                         **{**FAST, "steps": 2, "initial_size": 32, "initial_steps": 2})
    assert raised.value.step == 2
    assert raised.value.image.shape == (48, 64, 3)


@pytest.mark.slow
def test_a_checkpoint_of_another_run_is_refused_with_what_differs(tmp_path):
    content, style = gradient_image(48, 64), stripes_image(64, 64)
    first = dict(steps=2, style_weight=1.0, init="content", checkpoint_dir=str(tmp_path / "checkpoints"), **FAST)
    tf_style.stylize(content, style, **first)
    with pytest.raises(UsageError, match=r"of a different run: --style_weight was 1.0, is 2.0; the content image "
                                         r"differs\. Rerun with the same options"):
        tf_style.stylize(content[::-1].copy(), style, **{**first, "style_weight": 2.0})
    with pytest.raises(UsageError, match=r"--init was content, is noise\. Rerun"):
        tf_style.stylize(content, style, **{**first, "init": "noise"})
    noise = {**first, "init": "noise", "checkpoint_dir": str(tmp_path / "noise")}
    tf_style.stylize(content, style, **noise)
    with pytest.raises(UsageError, match=r": the start image differs \(with --init=noise .*give the same --seed"):
        tf_style.stylize(content, style, **noise)
    # Options that do not change the result may differ.
    tf_style.stylize(content, style, **first, save_every=1, original_colors=True)


def test_the_checkpoint_directory_must_be_writable(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="cannot write checkpoints in .*file.*--checkpoint_dir"):
        checkpoint.RunCheckpoints(str(tmp_path / "file" / "checkpoints"), {}, 10)


# ---------------------------------------------------------------------------------------------------------
# Divergence: never a NaN image, never a NaN checkpoint.

CONFIG = StyleConfig(size=64, steps=10, progress_every=1)


def _optimization_with_checkpoints(extractor, directory, config=CONFIG):
    targets = compute_targets(extractor, gradient_image(48, 64), stripes_image(64, 64), config)
    optimization = Optimization(extractor, targets, gradient_image(48, 64)[None], config)
    checkpoints = checkpoint.RunCheckpoints(directory, {"run": 1}, every=1)
    checkpoints.track(optimization.state(), scale_index=0)
    return optimization, checkpoints


def _poison_at(optimization, step):
    def callback(report):
        if report.step == step:
            optimization.image.assign(tf.fill(optimization.image.shape, float("nan")))
    return callback


def test_divergence_keeps_the_last_finite_image_out_of_the_checkpoints(extractor, tmp_path):
    directory = str(tmp_path / "checkpoints")
    optimization, checkpoints = _optimization_with_checkpoints(extractor, directory)
    seen = []
    with pytest.raises(DivergedError, match="smaller --learning_rate") as raised:
        optimization.run(CONFIG.steps, callbacks=[lambda report: seen.append(report.image),
                                                  _poison_at(optimization, 2)], checkpoints=checkpoints)
    assert raised.value.step == 3
    np.testing.assert_array_equal(raised.value.image[0], seen[-1])
    saved = checkpoint.read_latest(directory)
    assert saved.step == 2
    image = tf.train.load_checkpoint(saved.path).get_tensor("image/.ATTRIBUTES/VARIABLE_VALUE")
    assert np.isfinite(image).all()


@pytest.mark.slow
def test_an_interrupt_in_a_diverged_state_is_a_divergence_without_checkpoint(extractor, tmp_path):
    directory = str(tmp_path / "checkpoints")
    optimization, checkpoints = _optimization_with_checkpoints(extractor, directory)
    poison = _poison_at(optimization, 1)

    def poison_then_interrupt(report):
        poison(report)
        raise KeyboardInterrupt

    with pytest.raises(DivergedError) as raised:
        optimization.run(CONFIG.steps, callbacks=[poison_then_interrupt], checkpoints=checkpoints)
    assert np.isfinite(raised.value.image).all()
    assert checkpoint.read_latest(directory).step == 1


@pytest.mark.slow
def test_resuming_a_checkpoint_that_then_diverges_gives_the_checkpointed_image(extractor, tmp_path):
    """With Adam, whose output (the average) is not the iterate that the poison reaches; L-BFGS's output is its
    iterate, and a poisoned iterate leaves no finite image (`test_a_poisoned_resumed_iterate_is_not_reported`)."""
    directory = str(tmp_path / "checkpoints")
    adam = CONFIG.replace(optimizer="adam")
    first, checkpoints = _optimization_with_checkpoints(extractor, directory, adam)
    first.run(3, checkpoints=checkpoints)
    again, checkpoints = _optimization_with_checkpoints(extractor, directory, adam)
    checkpoints.restore(checkpoints.latest())
    again.image.assign(tf.fill(again.image.shape, float("nan")))
    with pytest.raises(DivergedError) as raised:
        again.run(CONFIG.steps, checkpoints=checkpoints)
    np.testing.assert_array_equal(raised.value.image, first.result())


@pytest.mark.slow
def test_a_poisoned_resumed_iterate_is_not_reported_as_finite(extractor, tmp_path):
    directory = str(tmp_path / "checkpoints")
    first, checkpoints = _optimization_with_checkpoints(extractor, directory)
    first.run(3, checkpoints=checkpoints)
    again, checkpoints = _optimization_with_checkpoints(extractor, directory)
    checkpoints.restore(checkpoints.latest())
    again.image.assign(tf.fill(again.image.shape, float("nan")))
    with pytest.raises(DivergedError) as raised:
        again.run(CONFIG.steps, checkpoints=checkpoints)
    assert raised.value.image is None


def test_learning_rates_beyond_the_pixel_range_are_refused():
    # Adam's step is about the learning rate: 1e9 slams pixels to 0 or 255 each step, and with the image
    # clipped the loss jumps about without ever becoming NaN, so the run would end with noise.
    with pytest.raises(UsageError, match="--learning_rate must be at most 255"):
        StyleConfig(learning_rate=1e9)
    StyleConfig(learning_rate=255)


# ---------------------------------------------------------------------------------------------------------
# Checkpoint writes: a kill at any moment leaves a checkpoint that restores.

_SAVE_FOREVER = textwrap.dedent("""
    import sys
    import tensorflow as tf
    from tf_style.optimization.checkpoint import RunCheckpoints
    variables = {name: tf.Variable(tf.zeros([2048, 1024, 8])) for name in ("image", "image_average")}
    variables["steps_done"] = tf.Variable(0, dtype=tf.int64)
    checkpoints = RunCheckpoints(sys.argv[1], {"run": 1}, every=1)
    checkpoints.track(variables, scale_index=0)
    for step in range(1, 1000):
        for variable in variables.values():
            variable.assign(tf.fill(variable.shape, tf.cast(step, variable.dtype)))
        print("saving", step, flush=True)
        checkpoints.save(step)
""")


@pytest.mark.slow
def test_a_kill_while_writing_a_checkpoint_leaves_one_that_restores(tmp_path):
    # Two writers of 128 MB checkpoints at once, killed with SIGKILL at different moments of writing the third.
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    directories = [tmp_path / f"run{index}" for index in range(2)]
    writers = [subprocess.Popen([sys.executable, "-c", _SAVE_FOREVER, str(directory)], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=environment, cwd=REPO) for directory in directories]
    try:
        for index, writer in enumerate(writers):
            programs.wait_for_output(writer, "saving 3\n")
            time.sleep(0.01 + 0.08 * index)
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=30)
    finally:
        for writer in writers:
            writer.kill()
            writer.wait()
    killed_mid_write = 0
    for directory in directories:
        # TensorFlow writes into `ckpt-N_temp/` and renames into place; a kill leaves that directory behind.
        killed_mid_write += any(name.endswith("_temp") for name in os.listdir(directory))
        saved = checkpoint.read_latest(str(directory))
        assert saved.step >= 2
        reader = tf.train.load_checkpoint(saved.path)
        for name in ("image", "image_average", "steps_done"):
            assert np.all(reader.get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE") == saved.step), name
    assert killed_mid_write >= 1


@pytest.mark.slow
def test_a_corrupt_checkpoint_is_refused_in_one_line_and_the_output_is_kept(tmp_path):
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    Image.fromarray(gradient_image(48, 64).astype(np.uint8)).save(content)
    Image.fromarray(stripes_image(64, 64).astype(np.uint8)).save(style)
    checkpoints, output = tmp_path / "checkpoints", tmp_path / "out.png"
    arguments = [f"--content={content}", f"--style={style}", "--size=64", "--initial_size=0", "--steps=2",
                 "--checkpoint_every=1", f"--checkpoint_dir={checkpoints}", f"--output={output}"]
    assert programs.stylize(*arguments).returncode == 0
    for data_file in checkpoints.glob("*.data-*"):
        data_file.write_bytes(b"\0" * 16)  # the disk or a copy broke it
    before = output.read_bytes()
    result = programs.stylize(*arguments)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "cannot be read" in result.stderr and f"delete {checkpoints}" in result.stderr
    assert output.read_bytes() == before
