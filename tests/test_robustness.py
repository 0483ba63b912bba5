"""Never lose work, never crash on bad input: interrupts, resuming, divergence, memory and file limits.

The command line runs in process where only its outcome counts (`tests/programs.py`), and in subprocesses for
the signals, which are sent once a run has written its first snapshot.
"""

import os
import re
import select
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
from bad_inputs import ACCEPTED, REFUSED, REPO, png_bytes
from conftest import gradient_image, stripes_image
from tf_style import checkpoint, images, memory, schedule
from tf_style.config import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, StyleConfig
from tf_style.errors import DivergedError, Interrupted, UsageError
from tf_style.optimize import Optimization
from tf_style.targets import compute_targets

# One scale unless a test asks for more: these tests must not follow the tuned defaults of the scales.
FAST = dict(size=64, initial_size=0, initial_steps=None, progress_every=1, log=None)
LAYERS = DEFAULT_CONTENT_LAYERS + DEFAULT_STYLE_LAYERS
GiB = 1 << 30


def _interrupt_at(step: int):
    """A callback that acts like Ctrl-C once the run reports `step`."""
    def callback(report):
        if report.step == step:
            raise KeyboardInterrupt
    return callback


# ---------------------------------------------------------------------------------------------------------
# Interrupt and resume, in process: a KeyboardInterrupt raised between steps stands for the signal.

_UNINTERRUPTED = {}  # results of uninterrupted runs, by options


@pytest.mark.parametrize("options, stop_at", [
    (dict(steps=6), 2),
    (dict(steps=3, initial_size=32, initial_steps=3), 5),  # scales 32, 45, 64 px: in the middle of the second
    (dict(steps=3, initial_size=32, initial_steps=3), 3),  # at the end of the first scale, before the second starts
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
    assert raised.value.image.shape == (48, 64, 3) and np.isfinite(raised.value.image).all()
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

    monkeypatch.setattr(schedule, "batch_targets", interrupted_while_preparing)
    with pytest.raises(Interrupted) as raised:
        tf_style.stylize(gradient_image(48, 64), stripes_image(64, 64), steps=5,
                         checkpoint_dir=str(tmp_path / "checkpoints"), **FAST)
    assert raised.value.image is None and raised.value.step == 0
    assert checkpoint.read_latest(str(tmp_path / "checkpoints")) is None


def test_interrupt_after_a_finished_scale_carries_that_scale_resized(monkeypatch):
    original = schedule.batch_targets
    calls = []

    def interrupted_at_the_second_scale(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(schedule, "batch_targets", interrupted_at_the_second_scale)
    with pytest.raises(Interrupted) as raised:
        tf_style.stylize(gradient_image(48, 64), stripes_image(64, 64),
                         **{**FAST, "steps": 2, "initial_size": 32, "initial_steps": 2})
    assert raised.value.step == 2
    assert raised.value.image.shape == (48, 64, 3)


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


def _optimization_with_checkpoints(extractor, directory):
    targets = compute_targets(extractor, gradient_image(48, 64), stripes_image(64, 64), CONFIG)
    optimization = Optimization(extractor, targets, gradient_image(48, 64)[None], CONFIG)
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


def test_resuming_a_checkpoint_that_then_diverges_gives_the_checkpointed_image(extractor, tmp_path):
    directory = str(tmp_path / "checkpoints")
    first, checkpoints = _optimization_with_checkpoints(extractor, directory)
    first.run(3, checkpoints=checkpoints)
    again, checkpoints = _optimization_with_checkpoints(extractor, directory)
    checkpoints.restore(checkpoints.latest())
    again.image.assign(tf.fill(again.image.shape, float("nan")))
    with pytest.raises(DivergedError) as raised:
        again.run(CONFIG.steps, checkpoints=checkpoints)
    np.testing.assert_array_equal(raised.value.image, first.result())


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
    from tf_style.checkpoint import RunCheckpoints
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


def _wait_for_output(process, text: str, timeout: float = 120) -> None:
    """Reads a subprocess's stdout (unbuffered) until `text` has appeared, for at most `timeout` seconds."""
    seen, deadline = b"", time.monotonic() + timeout
    while text.encode() not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {text!r} after {timeout} s; got {seen[-500:]!r}"
        if select.select([process.stdout.fileno()], [], [], remaining)[0]:
            chunk = os.read(process.stdout.fileno(), 1 << 16)
            assert chunk, f"the subprocess ended before printing {text!r}; got {seen[-500:]!r}"
            seen += chunk


def test_a_kill_while_writing_a_checkpoint_leaves_one_that_restores(tmp_path):
    # Two writers of 128 MB checkpoints at once, killed with SIGKILL at different moments of writing the third.
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    directories = [tmp_path / f"run{index}" for index in range(2)]
    writers = [subprocess.Popen([sys.executable, "-c", _SAVE_FOREVER, str(directory)], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=environment, cwd=REPO) for directory in directories]
    try:
        for index, writer in enumerate(writers):
            _wait_for_output(writer, "saving 3\n")
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


# ---------------------------------------------------------------------------------------------------------
# Memory.

def test_the_memory_estimate_grows_with_the_pixels_and_the_layers():
    small = memory.estimate_peak_bytes(384, 512, LAYERS, "float32")
    large = memory.estimate_peak_bytes(768, 1024, LAYERS, "float32")
    assert large - memory.BASE_BYTES == pytest.approx(4 * (small - memory.BASE_BYTES), rel=1e-6)
    assert memory.estimate_peak_bytes(768, 1024, LAYERS, "mixed_bfloat16") < large
    assert memory.estimate_peak_bytes(768, 1024, ("block1_conv1", "block2_conv1"), "float32") < large
    # A style image twice the output's size is seen only forward, at about half the cost per pixel.
    assert memory.estimate_peak_bytes(768, 1024, LAYERS, "float32", [(1536, 2048)]) > large
    assert memory.activations_per_pixel(("block1_conv1",)) == 64
    assert memory.activations_per_pixel(("block2_conv1",)) == 64 + 64 + 128 / 4


def test_a_2048_pixel_result_fits_in_24_gib():
    for dtype in ("float32", "bfloat16"):
        memory.require_fits(1536, 2048, [(1280, 2048)], LAYERS, dtype, available=22 * GiB)


def test_a_size_beyond_memory_is_refused_with_the_estimate_and_a_size_that_fits():
    with pytest.raises(UsageError) as raised:
        memory.require_fits(6000, 8000, [], LAYERS, "float32", available=16 * GiB)
    message = str(raised.value)
    assert re.search(r"8000x6000 result needs about \d+\.\d GB of memory in float32 \(estimated\), but 17\.2 GB "
                     r"are available; use --size=\d+ or less \(or --precision=mixed_bfloat16", message)
    fitting = int(re.search(r"--size=(\d+)", message).group(1))
    height, width = round(fitting * 0.75), fitting
    memory.require_fits(height, width, [], LAYERS, "float32", available=16 * GiB)
    with pytest.raises(UsageError):
        memory.require_fits(height + 8, width + 10, [], LAYERS, "float32", available=16 * GiB)


def test_available_memory_is_read_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24684084 kB\nMemAvailable:   20000000 kB\n")
    assert memory.available_bytes(str(meminfo)) >= 20000000 * 1024
    assert memory.available_bytes(str(tmp_path / "missing")) > GiB  # falls back to the physical memory


# ---------------------------------------------------------------------------------------------------------
# Images.

def test_a_decompression_bomb_is_refused_from_its_header(tmp_path):
    from bad_inputs import png_header_claiming
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_claiming(100000, 100000))
    assert path.stat().st_size < 100
    with pytest.raises(UsageError, match="claims 10,000,000,000 pixels, more than the limit of 120,000,000"):
        images.load_image(str(path), "content image")
    path.write_bytes(png_header_claiming(12000, 11000))  # under Pillow's own limit, over ours
    with pytest.raises(UsageError, match="claims 12000x11000 pixels, more than the limit"):
        images.image_file_size(str(path), "content image")


def test_image_file_size_reads_the_header_and_applies_exif_rotation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (64, 32)).save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    assert images.image_file_size(str(tmp_path / "rotated.jpg")) == (64, 32)
    assert images.load_image(str(tmp_path / "rotated.jpg")).shape[:2] == (64, 32)


# ---------------------------------------------------------------------------------------------------------
# The command line: the runs that fail or finish at once start together; see the README's "Bad inputs".

def _existing_output(directory) -> str:
    path = os.path.join(directory, "existing.png")
    Image.fromarray(np.full((20, 20, 3), 7, np.uint8)).save(path)
    return path


def _cli_cases(directory):
    """{case: (args, expected exit status, expected message part)} for runs that need no signal."""
    style = os.path.join(directory, "style.png")
    with open(style, "wb") as file:
        file.write(png_bytes(64, 64))
    output = _existing_output(directory)
    common = [f"--style={style}", "--size=64", "--steps=2", f"--output={output}"]
    cases = {name: ([f"--content={make(directory)}", *common], 2, message)
             for name, (make, message) in REFUSED.items()}
    accepted = {name: make(directory) for name, (make, _) in ACCEPTED.items()}
    cases["odd but valid images"] = (
        [f"--content={accepted.pop('EXIF-rotated photo')}", f"--style={','.join(accepted.values())}", "--size=64",
         "--steps=1", f"--output={os.path.join(directory, 'odd', 'result.png')}"], 0, "wrote")
    content = os.path.join(directory, "content.png")
    with open(content, "wb") as file:
        file.write(png_bytes(48, 64))
    cases["size beyond memory"] = ([f"--content={content}", *common, "--size=60000"], 2,
                                   "GB of memory in")
    with open(os.path.join(directory, "a_file"), "w") as file:
        file.write("x")
    cases["checkpoint dir not writable"] = (
        [f"--content={content}", *common, f"--checkpoint_dir={os.path.join(directory, 'a_file', 'ck')}"], 2,
        "cannot write checkpoints in")
    # float32 gradients overflow to infinity: the image becomes NaN at the first step.
    cases["non-finite image"] = ([f"--content={content}", *common, "--style_weight=1e38"], 1,
                                 "diverged at step 2 (loss")
    return cases, output


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("cli"))
    cases, output = _cli_cases(directory)
    before = open(output, "rb").read()
    results = {}
    for case, (arguments, _, _) in cases.items():
        ran = programs.stylize(*arguments)
        results[case] = (ran.returncode, ran.stdout, ran.stderr)
    return cases, results, before, output, directory


@pytest.mark.parametrize("case", [*REFUSED, "size beyond memory", "checkpoint dir not writable", "non-finite image"])
def test_cli_refuses_in_one_line_and_leaves_the_output_alone(cli_results, case):
    cases, results, before, output, _ = cli_results
    status, stdout, stderr = results[case]
    _, expected_status, message = cases[case]
    assert status == expected_status, (stdout, stderr)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], stderr
    assert open(output, "rb").read() == before


def test_cli_stylizes_odd_but_valid_images(cli_results):
    _, results, _, _, directory = cli_results
    status, stdout, stderr = results["odd but valid images"]
    assert status == 0, stderr
    assert Image.open(os.path.join(directory, "odd", "result.png")).size == (32, 64)  # the EXIF turn applied


def test_the_readme_table_states_what_the_cli_does():
    with open(os.path.join(REPO, "README.md")) as readme:
        text = readme.read()
    section = text[text.index("## Bad inputs"):]
    for name, (_, message) in {**REFUSED, **ACCEPTED}.items():
        assert f"| {name} |" in section, name
        row = section[section.index(f"| {name} |"):].splitlines()[0]
        assert message in row, (name, row)


# ---------------------------------------------------------------------------------------------------------
# Signals.

def _start_cli(*args) -> subprocess.Popen:
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "tf_style.main", *args], cwd=REPO, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_file(path, process, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.02)


def _assert_complete_png(path, size) -> None:
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG" and image.size == size


@pytest.fixture
def inputs(tmp_path):
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    content.write_bytes(png_bytes(48, 64))
    style.write_bytes(png_bytes(64, 64))
    return [f"--content={content}", f"--style={style}", "--size=64"]


def test_sigint_writes_the_current_image_and_a_checkpoint_that_resumes_to_the_same_result(tmp_path, inputs):
    output, checkpoints = tmp_path / "out" / "result.png", tmp_path / "checkpoints"
    command = [*inputs, "--steps=60", "--save_every=2", "--checkpoint_every=5", f"--output={output}",
               f"--checkpoint_dir={checkpoints}"]
    process = _start_cli(*command)
    _wait_for_file(tmp_path / "out" / "result_step0002.png", process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    step = int(re.search(r"interrupted at step (\d+) of 60 \(SIGINT\); wrote the current image to ", stderr).group(1))
    assert f"{output}; run the same command to resume from the checkpoint in {checkpoints}" in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    _assert_complete_png(output, (64, 48))
    assert checkpoint.read_latest(str(checkpoints)).step == step < 60

    uninterrupted = tmp_path / "uninterrupted.png"
    processes = [_start_cli(*command), _start_cli(*inputs, "--steps=60", f"--output={uninterrupted}")]
    results = [(process.communicate(timeout=300), process.returncode) for process in processes]
    (resumed_stdout, resumed_stderr), resumed_status = results[0]
    assert resumed_status == 0 and results[1][1] == 0, (resumed_stderr, results[1])
    assert f"found a checkpoint at step {step} in {checkpoints}" in resumed_stdout
    np.testing.assert_array_equal(np.asarray(Image.open(output)), np.asarray(Image.open(uninterrupted)))


def test_sigterm_writes_the_current_image_over_the_old_output(tmp_path, inputs):
    output = _existing_output(tmp_path)
    process = _start_cli(*inputs, "--steps=100000", "--save_every=2", f"--output={output}")
    _wait_for_file(tmp_path / "existing_step0002.png", process)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert re.search(r"interrupted at step \d+ of 100000 \(SIGTERM\); wrote the current image to .*existing.png$",
                     stderr.strip())
    _assert_complete_png(output, (64, 48))
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_an_interrupt_before_the_first_step_writes_nothing(tmp_path, inputs):
    output = _existing_output(tmp_path)
    before = open(output, "rb").read()
    process = _start_cli(*inputs, "--steps=100000", f"--output={output}")
    _wait_for_output(process, "scales 64 px")  # the API's plan line: building the network comes next
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr == "tf_style: interrupted before the first step (SIGINT); nothing was written\n"
    assert open(output, "rb").read() == before


def test_an_interrupted_batch_keeps_finished_results_and_writes_no_half_done_one(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", "b.png"):
        (photos / name).write_bytes(png_bytes(48, 64))
    style = tmp_path / "style.png"
    style.write_bytes(png_bytes(64, 64))
    out = tmp_path / "out"
    process = _start_cli(f"--content={photos}", f"--style={style}", f"--output_dir={out}", "--size=64",
                         "--initial_size=0", "--steps=100000", "--save_every=2", "--batch_size=1")
    _wait_for_file(out / "a__style_step0002.png", process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.strip() == ("tf_style: interrupted (SIGINT) after writing 0 of 2 results; run the same command "
                              "to do the rest")
    assert not (out / "a__style.png").exists() and not (out / "b__style.png").exists()
