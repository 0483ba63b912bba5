"""Signals reach the stylize program as a user sends them, in a subprocess: the current image is written, a
checkpoint resumes, a batch keeps its finished results."""

import os
import re
import signal
import time

import numpy as np
import pytest
from PIL import Image

import programs
from bad_inputs import existing_output, png_bytes
from tf_style.optimization import checkpoint

# ---------------------------------------------------------------------------------------------------------
# Signals.

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


@pytest.mark.slow
def test_sigint_writes_the_current_image_and_a_checkpoint_that_resumes_to_the_same_result(tmp_path, inputs):
    output, checkpoints = tmp_path / "out" / "result.png", tmp_path / "checkpoints"
    command = [*inputs, "--steps=60", "--save_every=2", "--checkpoint_every=5", f"--output={output}",
               f"--checkpoint_dir={checkpoints}"]
    process = programs.start("tf_style.main", *command)
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
    processes = [programs.start("tf_style.main", *command),
                 programs.start("tf_style.main", *inputs, "--steps=60", f"--output={uninterrupted}")]
    results = [(process.communicate(timeout=300), process.returncode) for process in processes]
    (resumed_stdout, resumed_stderr), resumed_status = results[0]
    assert resumed_status == 0 and results[1][1] == 0, (resumed_stderr, results[1])
    assert f"found a checkpoint at step {step} in {checkpoints}" in resumed_stdout
    np.testing.assert_array_equal(np.asarray(Image.open(output)), np.asarray(Image.open(uninterrupted)))


@pytest.mark.slow
def test_sigterm_writes_the_current_image_over_the_old_output(tmp_path, inputs):
    output = existing_output(tmp_path)
    process = programs.start("tf_style.main", *inputs, "--steps=100000", "--save_every=2", f"--output={output}")
    _wait_for_file(tmp_path / "existing_step0002.png", process)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert re.search(r"interrupted at step \d+ of 100000 \(SIGTERM\); wrote the current image to .*existing.png$",
                     stderr.strip())
    _assert_complete_png(output, (64, 48))
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


@pytest.mark.slow
def test_an_interrupt_before_the_first_step_writes_nothing(tmp_path, inputs):
    output = existing_output(tmp_path)
    before = open(output, "rb").read()
    process = programs.start("tf_style.main", *inputs, "--steps=100000", f"--output={output}")
    programs.wait_for_output(process, "scales 64 px")  # the API's plan line: building the network comes next
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr == "tf_style: interrupted before the first step (SIGINT); nothing was written\n"
    assert open(output, "rb").read() == before


@pytest.mark.slow
def test_an_interrupted_batch_keeps_finished_results_and_writes_no_half_done_one(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", "b.png"):
        (photos / name).write_bytes(png_bytes(48, 64))
    style = tmp_path / "style.png"
    style.write_bytes(png_bytes(64, 64))
    out = tmp_path / "out"
    process = programs.start("tf_style.main", f"--content={photos}", f"--style={style}", f"--output_dir={out}",
                             "--size=64", "--initial_size=0", "--steps=100000", "--save_every=2", "--batch_size=1")
    _wait_for_file(out / "a__style_step0002.png", process)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.strip() == ("tf_style: interrupted (SIGINT) after writing 0 of 2 results; run the same command "
                              "to do the rest")
    assert not (out / "a__style.png").exists() and not (out / "b__style.png").exists()
