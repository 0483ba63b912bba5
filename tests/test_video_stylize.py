"""The video mode: the temporal term, the frame loop (consistency, shots, resume) and the command line.

Clips are tiny (64x48, a few frames) and runs short (a handful of steps); the benchmark (benchmarks/video.py)
measures how consistent and how fast the mode is at real sizes.
"""

import os
import re
import signal
import subprocess

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import programs
import tf_style
from tf_style.config import StyleConfig
from tf_style.errors import UsageError
from tf_style.images import load_image
from tf_style.objective.terms import TemporalTerm
from tf_style.video import clips, dependencies, flow, metrics
from tf_style.video.stylize import EarlierFrame, VideoStylizer, stylize_video
from tf_style.video.synthetic import pan_and_zoom

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTO = os.path.join(REPO, "tf_style", "samples", "photos", "tubingen.jpg")
OTHER_PHOTO = os.path.join(REPO, "tf_style", "samples", "photos", "chelsea.jpg")
STYLE = os.path.join(REPO, "tf_style", "samples", "paintings", "starry_night.jpg")
HEIGHT, WIDTH, FRAME_RATE = 48, 64, 8.0
FAST = dict(size=64, initial_size=0, steps=6, frame_steps=4, precision="float32", seed=0)


def _pan(num_frames: int, photo: str = PHOTO) -> list:
    return list(pan_and_zoom(load_image(photo), num_frames, HEIGHT, WIDTH, (-3.0, -1.0), 1.0))


def _write(path, frames, audio_from=None) -> str:
    with clips.VideoWriter(path, FRAME_RATE, WIDTH, HEIGHT, audio_from=audio_from) as writer:
        for frame in frames:
            writer.write(frame)
    return str(path)


@pytest.fixture(scope="module")
def clip_with_sound(tmp_path_factory) -> str:
    directory = tmp_path_factory.mktemp("clip")
    tone = str(directory / "tone.m4a")
    subprocess.run([dependencies.ffmpeg_executable(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=1", "-c:a", "aac", tone], check=True)
    return _write(directory / "pan.mp4", _pan(5), audio_from=tone)


def test_the_temporal_term_is_the_weighted_squared_difference_from_the_earlier_results():
    images = tf.fill([1, 4, 5, 3], 100.0)
    previous = tf.stack([tf.fill([4, 5, 3], 90.0), tf.fill([4, 5, 3], 130.0)])[None]  # [1, J=2, 4, 5, 3]
    weights = np.zeros([1, 2, 4, 5], np.float32)
    weights[0, 0, :2] = 1.0  # half the pixels held to the first, 10 levels off
    weights[0, 1, 2:, :] = 0.5  # the other half, at half weight, to the second, 30 levels off
    loss = TemporalTerm(1.0).loss({}, images, {"previous": previous, "weights": tf.constant(weights)})
    np.testing.assert_allclose(loss.numpy(), [0.5 * 100 + 0.5 * 0.5 * 900], rtol=1e-6)
    resized = TemporalTerm(1.0).targets_at({"previous": previous, "weights": tf.constant(weights)}, 8, 10)
    assert resized["previous"].shape == (1, 2, 8, 10, 3) and resized["weights"].shape == (1, 2, 8, 10)


@pytest.mark.slow
def test_video_frames_are_held_to_the_earlier_ones():
    """The same clip with and without the temporal term: consecutive results differ less, along the flow."""
    contents = [frame.astype(np.float32) for frame in _pan(4)]

    def warping_error(config):
        stylizer = VideoStylizer(config, log=None)
        results, earlier = [], []
        for content in contents:
            results.append(stylizer.stylize_frame(content, STYLE, earlier))
            earlier.append(EarlierFrame(content, results[-1]))
        error = metrics.WarpingError()
        for index in range(1, len(results)):
            backward = flow.optical_flow(contents[index], contents[index - 1])
            forward = flow.optical_flow(contents[index - 1], contents[index])
            error.add(results[index - 1], results[index], backward, flow.consistency_weights(forward, backward))
        return error.value

    held = warping_error(StyleConfig(**{**FAST, "frame_steps": 10}))
    free = warping_error(StyleConfig(**{**FAST, "frame_steps": 10, "temporal_weight": 0.0}))
    assert held < 0.7 * free, (held, free)


@pytest.mark.slow
def test_a_video_is_written_with_its_frame_rate_and_sound(clip_with_sound, tmp_path):
    output = tmp_path / "styled.mp4"
    reports = []
    count = stylize_video(clip_with_sound, STYLE, str(output), log=None, on_frame=reports.append, **FAST)
    assert count == 5 and [report.index for report in reports] == [0, 1, 2, 3, 4]
    assert [report.shot_start for report in reports] == [True, False, False, False, False]
    info = clips.probe(str(output))
    assert (info.width, info.height, info.frame_rate, info.has_audio) == (64, 48, FRAME_RATE, True)
    assert len(list(clips.read_frames(str(output)))) == 5
    assert sorted(os.listdir(tmp_path)) == ["styled.mp4"]  # the frame folder is gone, nothing half-written


@pytest.mark.slow
def test_a_folder_of_frames_is_an_output_too(clip_with_sound, tmp_path):
    output = tmp_path / "frames"
    assert stylize_video(clip_with_sound, STYLE, str(output), log=None, **FAST) == 5
    assert clips.existing_frames(output) == [0, 1, 2, 3, 4]
    assert load_image(clips.frame_path(output, 4)).shape == (48, 64, 3)


@pytest.mark.slow
def test_an_interrupted_video_resumes_from_the_first_missing_frame(clip_with_sound, tmp_path):
    output = tmp_path / "styled.mp4"

    def interrupt_after_two(report):
        if report.index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stylize_video(clip_with_sound, STYLE, str(output), log=None, on_frame=interrupt_after_two, **FAST)
    assert not output.exists() and clips.existing_frames(str(output) + ".frames") == [0, 1]
    kept = [load_image(clips.frame_path(str(output) + ".frames", index)) for index in (0, 1)]
    reports = []
    assert stylize_video(clip_with_sound, STYLE, str(output), log=None, on_frame=reports.append, **FAST) == 5
    assert [report.resumed for report in reports] == [True, True, False, False, False]
    second = list(clips.read_frames(str(output)))[1].astype(np.float32)
    # The resumed frame is the one written before (through H.264, so not to the bit), not another.
    assert np.abs(second - kept[1]).mean() < 0.5 * np.abs(second - kept[0]).mean()


@pytest.mark.slow
def test_a_cut_starts_a_new_shot(tmp_path):
    clip = _write(tmp_path / "cut.mp4", _pan(3) + _pan(3, OTHER_PHOTO))
    reports = []
    stylize_video(clip, STYLE, str(tmp_path / "frames"), log=None, on_frame=reports.append, **FAST)
    assert [report.shot_start for report in reports] == [True, False, False, True, False, False]


@pytest.mark.slow
def test_the_command_line_stylizes_a_video(clip_with_sound, tmp_path):
    output = tmp_path / "out.mp4"
    result = programs.stylize(f"--content={clip_with_sound}", f"--style={STYLE}", f"--output={output}", "--size=64",
                              "--initial_size=0", "--steps=4", "--frame_steps=2")
    assert result.returncode == 0, result.stderr
    assert re.search(r"frame 5/5: [\d.]+ s", result.stdout)
    assert result.stdout.strip().endswith("(5 frames) in " + result.stdout.strip().split(" in ")[-1])
    assert clips.probe(str(output)).has_audio


@pytest.mark.parametrize("contents, message", [
    (b"", "is not a video"),
    (os.urandom(4096), "is not a video"),
])
def test_a_broken_video_is_one_line_and_writes_nothing(tmp_path, contents, message):
    clip = tmp_path / "broken.mp4"
    clip.write_bytes(contents)
    output = tmp_path / "out.mp4"
    result = programs.stylize(f"--content={clip}", f"--style={STYLE}", f"--output={output}", "--size=64")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("tf_style: ") and message in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["broken.mp4"]


@pytest.mark.slow
def test_ctrl_c_keeps_the_frames_done_and_the_same_command_resumes(clip_with_sound, tmp_path):
    output = tmp_path / "out.mp4"
    command = [f"--content={clip_with_sound}", f"--style={STYLE}", f"--output={output}", "--size=64",
               "--initial_size=0", "--steps=4", "--frame_steps=200"]
    process = programs.start("tf_style.main", *command)
    programs.wait_for_output(process, "frame 2/5")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    done = int(re.search(r"interrupted \(SIGINT\) after (\d+) frames; they are in ", stderr).group(1))
    assert done >= 2 and not output.exists()
    assert clips.existing_frames(str(output) + ".frames") == list(range(done))
    result = programs.stylize(*command[:-1], "--frame_steps=2")
    assert result.returncode == 0, result.stderr
    assert f"resuming: {done} frames already stylized" in result.stdout
    assert len(list(clips.read_frames(str(output)))) == 5


def test_video_options_are_checked():
    with pytest.raises(UsageError, match="--temporal_weight"):
        StyleConfig(temporal_weight=-1.0)
    with pytest.raises(UsageError, match="--frame_steps"):
        StyleConfig(frame_steps=0)
    with pytest.raises(UsageError, match="drop --checkpoint_dir"):
        VideoStylizer(StyleConfig(checkpoint_dir="/tmp/checkpoints"), log=None)


@pytest.mark.slow
def test_a_batch_run_takes_videos_beside_images(clip_with_sound, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    os.symlink(clip_with_sound, inputs / "clip.mp4")
    Image.open(PHOTO).resize((64, 48)).save(inputs / "photo.png")
    output_dir = tmp_path / "out"
    command = [f"--content={inputs}", f"--style={STYLE}", f"--output_dir={output_dir}", "--size=64",
               "--initial_size=0", "--steps=2", "--frame_steps=2"]
    result = programs.stylize(*command)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(output_dir)) == ["clip__starry_night.mp4", "photo__starry_night.png"]
    assert len(list(clips.read_frames(str(output_dir / "clip__starry_night.mp4")))) == 5
    assert "wrote 2 results" in result.stdout
    again = programs.stylize(*command)
    assert again.returncode == 0 and "wrote 0 results" in again.stdout


@pytest.mark.slow
def test_one_api_call_writes_the_videos_and_the_images_of_a_batch(clip_with_sound, tmp_path):
    """`stylize_to_files` takes a video as it takes an image: the command line's batch run is this call."""
    photo = tmp_path / "photo.png"
    Image.open(PHOTO).resize((64, 48)).save(photo)
    frames = []
    done = tf_style.stylize_to_files([(clip_with_sound, STYLE), (photo, STYLE), (tmp_path / "missing.mp4", STYLE)],
                                     tmp_path / "out", log=None, on_frame=frames.append, size=64, initial_size=0,
                                     steps=2, frame_steps=2)
    assert sorted((os.path.basename(result.pair.output), result.written) for result in done) == [
        ("missing__starry_night.mp4", False), ("pan__starry_night.mp4", True), ("photo__starry_night.png", True)]
    assert "missing.mp4" in str(next(result.error for result in done if not result.written))
    assert [report.index for report in frames] == [0, 1, 2, 3, 4]
    assert len(list(clips.read_frames(str(tmp_path / "out" / "pan__starry_night.mp4")))) == 5
    again = tf_style.stylize_to_files([(clip_with_sound, STYLE), (photo, STYLE)], tmp_path / "out", log=None,
                                      size=64, initial_size=0, steps=2, frame_steps=2)
    assert again == []
