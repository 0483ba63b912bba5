"""The Beam pipeline on the DirectRunner: every input gets its result, bad inputs are dead-lettered, reruns skip.

64 px images and 2 steps at one scale: what is tested is the pipeline, not the pictures.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import programs
from conftest import gradient_image, stripes_image

pytest.importorskip("apache_beam")

from tf_style.beam import pipeline as beam_pipeline  # noqa: E402  (after the skip: it imports apache_beam)
from tf_style.config import StyleConfig  # noqa: E402
from tf_style.errors import UsageError  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = StyleConfig(size=64, steps=2, initial_size=0, batch_size=2)
SMALL_FLAGS = ["--size=64", "--steps=2", "--initial_size=0", "--batch_size=2"]
GOOD_CONTENTS = ["c0.png", "c1.png", "c2.jpg", "wide.png"]


def _inputs(directory) -> tuple:
    """A folder of contents (4 good, 1 corrupt, 2 with one output name) and a style; returns their paths."""
    contents = directory / "contents"
    contents.mkdir()
    for seed, name in enumerate(GOOD_CONTENTS[:3]):
        Image.fromarray(gradient_image(48, 64, seed).astype(np.uint8)).save(contents / name)
    Image.fromarray(gradient_image(32, 64, 9).astype(np.uint8)).save(contents / "wide.png")  # another size
    (contents / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    for extension in ("png", "bmp"):  # twin.png and twin.bmp would both become twin__style.png
        Image.fromarray(gradient_image(48, 64, 5).astype(np.uint8)).save(contents / f"twin.{extension}")
    style = directory / "style.png"
    Image.fromarray(stripes_image(64, 64).astype(np.uint8)).save(style)
    return str(contents / "*"), str(style)


def _results(output_dir) -> dict:
    """{name: modification time in ns} of the result images."""
    return {name: os.stat(os.path.join(output_dir, name)).st_mtime_ns for name in os.listdir(output_dir)
            if name.endswith(".png")}


def _failures(output_dir) -> list:
    lines = []
    for name in sorted(os.listdir(output_dir)):
        if name.startswith("_failures-") and name.endswith(".jsonl"):
            with open(os.path.join(output_dir, name)) as file:
                lines += [json.loads(line) for line in file if line.strip()]
    return lines


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("beam")
    pattern, style = _inputs(directory)
    output_dir = str(directory / "out")
    summary = beam_pipeline.run(pattern, [style], output_dir, CONFIG, ["--runner=DirectRunner"])
    return directory, pattern, style, output_dir, summary


@pytest.mark.slow
def test_every_good_input_gets_its_result(first_run):
    _, _, _, output_dir, summary = first_run
    expected = {f"{os.path.splitext(name)[0]}__style.png" for name in GOOD_CONTENTS}
    assert set(_results(output_dir)) == expected
    assert Image.open(os.path.join(output_dir, "c0__style.png")).size == (64, 48)
    assert Image.open(os.path.join(output_dir, "wide__style.png")).size == (64, 32)
    assert summary.images_done == 4 and summary.images_skipped == 0 and summary.images_failed == 3
    assert summary.seconds_per_image > 0
    # Nothing half-written or temporary is left: results, the dead-letter file, and nothing else.
    assert sorted(os.listdir(output_dir)) == sorted([*expected, "_failures-00000-of-00001.jsonl"])


def test_bad_inputs_land_in_the_dead_letter_file_with_their_reason(first_run):
    _, _, style, output_dir, _ = first_run
    failures = {os.path.basename(failure["path"]): failure for failure in _failures(output_dir)}
    assert set(failures) == {"corrupt.jpg", "twin.png", "twin.bmp"}
    assert "not a readable image" in failures["corrupt.jpg"]["reason"]
    assert "would all be written to" in failures["twin.png"]["reason"]
    assert all(failure["style"] == style for failure in failures.values())


def test_a_rerun_does_no_work(first_run):
    _, pattern, style, output_dir, _ = first_run
    before = _results(output_dir)
    summary = beam_pipeline.run(pattern, [style], output_dir, CONFIG, ["--runner=DirectRunner"])
    assert summary.images_done == 0 and summary.images_skipped == 4 and summary.images_failed == 3
    assert _results(output_dir) == before
    assert len(_failures(output_dir)) == 3  # the list is rewritten, not appended to


@pytest.mark.slow
def test_two_worker_processes_give_the_same_results_through_the_command_line(first_run, tmp_path):
    _, pattern, style, first_output_dir, _ = first_run
    output_dir = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "tf_style.beam_main", f"--content_pattern={pattern}", f"--style={style}",
         f"--output_dir={output_dir}", *SMALL_FLAGS, "--direct_running_mode=multi_processing",
         "--direct_num_workers=2"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO))
    assert result.returncode == 3, result.stderr  # done, but some inputs failed
    assert "wrote 4 results" in result.stdout and "3 failed" in result.stdout
    assert set(_results(output_dir)) == set(_results(first_output_dir))
    for name in _results(output_dir):
        ours = np.asarray(Image.open(output_dir / name), np.float32)
        theirs = np.asarray(Image.open(os.path.join(first_output_dir, name)), np.float32)
        # Batches are made differently in each mode; an image's result does not depend on its batch.
        assert np.abs(ours - theirs).max() <= 1, name
    assert len(_failures(output_dir)) == 3


@pytest.mark.slow
def test_overwrite_redoes_existing_results(tmp_path):
    pattern, style = _inputs(tmp_path)
    os.remove(tmp_path / "contents" / "corrupt.jpg")
    for name in ("twin.bmp", "c1.png", "c2.jpg", "wide.png"):
        os.remove(tmp_path / "contents" / name)
    output_dir = tmp_path / "out"
    beam_pipeline.run(pattern, [style], str(output_dir), CONFIG)
    before = _results(output_dir)
    summary = beam_pipeline.run(pattern, [style], str(output_dir), CONFIG, overwrite=True)
    assert summary.images_done == 2 and summary.images_skipped == 0
    assert all(_results(output_dir)[name] != mtime for name, mtime in before.items())
    assert _failures(output_dir) == []


@pytest.mark.parametrize("make_arguments, message", [
    (lambda tmp, style: (str(tmp / "nothing-*.png"), [style], str(tmp / "out")), "no files match"),
    (lambda tmp, style: (str(tmp), [style], str(tmp / "out")), "is a directory"),
    (lambda tmp, style: (str(tmp / "*.png"), [str(tmp / "missing.png")], str(tmp / "out")), "does not exist"),
    (lambda tmp, style: (str(tmp / "*.png"), [style], str(tmp / "file.png" / "out")), "cannot write results"),
])
def test_inputs_are_checked_before_the_job_starts(tmp_path, make_arguments, message):
    style = tmp_path / "style.png"
    Image.fromarray(stripes_image(64, 64).astype(np.uint8)).save(style)
    Image.fromarray(gradient_image(48, 64).astype(np.uint8)).save(tmp_path / "file.png")
    with pytest.raises(UsageError, match=message):
        beam_pipeline.check_inputs(*make_arguments(tmp_path, str(style)), CONFIG)


def test_options_a_pipeline_cannot_use_are_refused(tmp_path):
    with pytest.raises(UsageError, match="--checkpoint_dir"):
        beam_pipeline.check_inputs("*.png", ["style.png"], str(tmp_path), CONFIG.replace(checkpoint_dir="ckpt"))


def test_unknown_pipeline_arguments_are_found():
    arguments = ["--runner=DirectRunner", "--direct_num_workers", "2", "--project=p", "--region=r",
                 "--temp_location=gs://b/tmp", "--setup_file=./setup.py", "--colour=red"]
    assert beam_pipeline.unknown_pipeline_args(arguments) == ["--colour=red"]


def test_write_atomically_leaves_no_temporary_file_when_writing_fails(tmp_path, monkeypatch):
    from apache_beam.io.filesystems import FileSystems

    path = str(tmp_path / "result.png")
    beam_pipeline.write_atomically(path, b"first")

    def broken_rename(sources, destinations):
        raise OSError("disk full")

    monkeypatch.setattr(FileSystems, "rename", broken_rename)
    with pytest.raises(OSError):
        beam_pipeline.write_atomically(path, b"second")
    assert os.listdir(tmp_path) == ["result.png"]
    assert (tmp_path / "result.png").read_bytes() == b"first"


@pytest.mark.parametrize("args, message", [
    (["--content_pattern=/nowhere/*.png", "--colour=red"], "unknown flags --colour=red"),
    (["--output=x.png"], "--output is not a pipeline flag: results go to --output_dir"),
    (["--save_every=2"], "--save_every is not a pipeline flag: a pipeline writes results only"),
    (["--nocontact_sheet"], "--contact_sheet is not a pipeline flag"),
    (["--checkpoint_dir", "ckpt"], "--checkpoint_dir is not a pipeline flag: a pipeline resumes by skipping"),
    ([], "--content_pattern is required"),
])
def test_command_line_usage_errors_are_one_line_and_exit_2(args, message):
    result = programs.in_process("tf_style.beam_main", *args)
    assert result.returncode == 2, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1 and message in error_lines[0], result.stderr


@pytest.mark.slow
def test_a_video_is_split_at_its_cuts_and_its_shots_stylized_apart(tmp_path):
    from tf_style.images import load_image
    from tf_style.video import clips
    from tf_style.video.synthetic import pan_and_zoom

    photos = os.path.join(REPO, "tf_style", "samples", "photos")
    # Five frames of one shot (a cut needs a shot of `shots.MIN_SHOT_LENGTH` before it), three of another.
    frames = [frame for photo, count in (("tubingen.jpg", 5), ("chelsea.jpg", 3))
              for frame in pan_and_zoom(load_image(os.path.join(photos, photo)), count, 48, 64, (-2.0, 0.0), 1.0)]
    (tmp_path / "clips").mkdir()
    with clips.VideoWriter(str(tmp_path / "clips" / "cut.mp4"), 8.0, 64, 48) as writer:
        for frame in frames:
            writer.write(frame)
    style = tmp_path / "style.png"
    Image.fromarray(stripes_image(64, 64).astype(np.uint8)).save(style)
    output_dir = str(tmp_path / "out")
    pair = beam_pipeline.Pair(str(tmp_path / "clips" / "cut.mp4"), str(style), os.path.join(output_dir, "x.mp4"))
    assert [(shot.first, shot.end, shot.num_frames) for shot in beam_pipeline.SplitAtShots().process(pair)] == [
        (0, 5, 8), (5, 8, 8)]
    config = CONFIG.replace(frame_steps=2)
    summary = beam_pipeline.run(str(tmp_path / "clips" / "*.mp4"), [str(style)], output_dir, config,
                                ["--runner=DirectRunner"])
    assert (summary.images_done, summary.images_failed) == (1, 0)
    assert sorted(os.listdir(output_dir)) == ["_failures-00000-of-00001.jsonl", "cut__style.mp4"]
    assert len(list(clips.read_frames(os.path.join(output_dir, "cut__style.mp4")))) == 8
    again = beam_pipeline.run(str(tmp_path / "clips" / "*.mp4"), [str(style)], output_dir, config,
                              ["--runner=DirectRunner"])
    assert (again.images_done, again.images_skipped) == (0, 1)
