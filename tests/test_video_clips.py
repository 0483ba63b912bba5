"""tf_style.video.clips: probing, streaming frames in, encoding them out with audio, frame folders, and the
one-line errors for bad files and failed writes. Clips are tiny (64x48, 12 frames at 12 frames per second)."""

import os
import re
import resource
import subprocess
import sys

import numpy as np
import pytest

from tf_style.errors import UsageError, WriteError
from tf_style.images import load_image, save_image
from tf_style.video import clips, dependencies
from tf_style.video.synthetic import pan_and_zoom

HEIGHT, WIDTH, NUM_FRAMES, FRAME_RATE = 48, 64, 12, 12.0
PHOTOS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tf_style", "samples", "photos")


def _ffmpeg(*arguments):
    subprocess.run([dependencies.ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                    *arguments], check=True)


def _duration(path) -> float:
    """The duration ffmpeg reports for a file, in seconds."""
    report = subprocess.run([dependencies.ffmpeg_executable(), "-hide_banner", "-nostdin", "-i", path],
                            capture_output=True, text=True).stderr
    hours, minutes, seconds = re.search(r"Duration: (\d+):(\d+):([\d.]+)", report).groups()
    return 3600 * int(hours) + 60 * int(minutes) + float(seconds)


def _write(path, frames, frame_rate=FRAME_RATE, audio_from=None):
    with clips.VideoWriter(path, frame_rate, frames[0].shape[1], frames[0].shape[0], audio_from=audio_from) as writer:
        for frame in frames:
            writer.write(frame)


def _left_behind(directory) -> list:
    return sorted(name for name in os.listdir(directory) if name.startswith("."))


@pytest.fixture(scope="module")
def frames():
    return list(pan_and_zoom(load_image(os.path.join(PHOTOS, "chelsea.jpg")), NUM_FRAMES, HEIGHT, WIDTH, (1.0, 0.5),
                             1.0))


@pytest.fixture(scope="module")
def media(tmp_path_factory, frames):
    """Files made once for the module: a sine tone, a clip with it as audio, and a silent clip."""
    directory = tmp_path_factory.mktemp("media")
    files = {name: str(directory / name) for name in ("tone.m4a", "long_tone.m4a", "short_tone.m4a", "with_audio.mp4",
                                                      "silent.mp4")}
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", files["tone.m4a"])
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=3", "-c:a", "aac", files["long_tone.m4a"])
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=0.5", "-c:a", "aac", files["short_tone.m4a"])
    _write(files["with_audio.mp4"], frames, audio_from=files["tone.m4a"])
    _write(files["silent.mp4"], frames)
    return files


def test_probe_reads_what_the_writer_wrote(media):
    assert clips.probe(media["with_audio.mp4"]) == clips.VideoInfo(frame_rate=FRAME_RATE, num_frames=NUM_FRAMES,
                                                                   width=WIDTH, height=HEIGHT, has_audio=True)
    assert not clips.probe(media["silent.mp4"]).has_audio


def test_round_trip_keeps_frames_audio_and_frame_rate(media, frames, tmp_path):
    decoded = clips.read_frames(media["with_audio.mp4"])
    assert iter(decoded) is decoded  # a stream, not a list
    source, copy = media["with_audio.mp4"], str(tmp_path / "copy.mp4")
    info = clips.probe(source)
    with clips.VideoWriter(copy, info.frame_rate, info.width, info.height, audio_from=source) as writer:
        for frame in decoded:
            assert frame.dtype == np.uint8 and frame.shape == (HEIGHT, WIDTH, 3)
            writer.write(frame)
    assert clips.probe(copy) == info
    copied = np.array(list(clips.read_frames(copy)), np.float32)
    # Two generations of H.264 at quality 18: close to the frames, and in their order (the pan moves 1 px a
    # frame, so a shifted or reordered frame would differ by far more).
    assert np.mean(np.abs(copied - np.array(frames, np.float32)), axis=(1, 2, 3)).max() < 5
    assert not _left_behind(tmp_path)


def test_audio_is_cut_to_the_video_and_never_cuts_it(media, frames, tmp_path):
    _write(tmp_path / "long.mp4", frames, audio_from=media["long_tone.m4a"])
    assert _duration(str(tmp_path / "long.mp4")) == pytest.approx(NUM_FRAMES / FRAME_RATE, abs=0.05)
    _write(tmp_path / "short.mp4", frames, audio_from=media["short_tone.m4a"])
    assert clips.probe(tmp_path / "short.mp4").has_audio
    assert len(list(clips.read_frames(tmp_path / "short.mp4"))) == NUM_FRAMES


def test_audio_from_a_silent_file_gives_a_silent_video(media, frames, tmp_path):
    _write(tmp_path / "out.mkv", frames, audio_from=media["silent.mp4"])
    assert not clips.probe(tmp_path / "out.mkv").has_audio


def test_fractional_frame_rate_is_kept(frames, tmp_path):
    _write(tmp_path / "ntsc.mov", frames[:4], frame_rate=30000 / 1001)
    assert clips.probe(tmp_path / "ntsc.mov").frame_rate == pytest.approx(29.97, abs=0.001)


def test_odd_sizes_are_padded_by_repeating_the_edge(frames, tmp_path):
    odd = [frame[:HEIGHT - 1, :WIDTH - 1] for frame in frames[:4]]
    _write(tmp_path / "odd.mp4", odd)
    decoded = np.array(list(clips.read_frames(tmp_path / "odd.mp4")), np.float32)
    assert decoded.shape == (4, HEIGHT, WIDTH, 3)
    assert np.mean(np.abs(decoded[:, :-1, :-1] - np.array(odd, np.float32))) < 5
    assert np.mean(np.abs(decoded[:, :, -1] - decoded[:, :, -2])) < 5  # a copy, not black


def test_float_frames_are_rounded_like_saved_images(frames, tmp_path):
    _write(tmp_path / "float.mp4", [frame.astype(np.float32) + 0.3 for frame in frames[:4]])
    decoded = np.array(list(clips.read_frames(tmp_path / "float.mp4")), np.float32)
    assert np.mean(np.abs(decoded - np.array(frames[:4], np.float32))) < 5


def test_an_exception_in_the_block_leaves_no_file(frames, tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(KeyError):
        with clips.VideoWriter(path, FRAME_RATE, WIDTH, HEIGHT) as writer:
            writer.write(frames[0])
            raise KeyError("stylization failed")
    assert os.listdir(tmp_path) == []


def test_an_exception_in_the_block_keeps_the_previous_file(media, frames, tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"the previous result")
    with pytest.raises(KeyboardInterrupt):
        with clips.VideoWriter(path, FRAME_RATE, WIDTH, HEIGHT, audio_from=media["tone.m4a"]) as writer:
            writer.write(frames[0])
            raise KeyboardInterrupt
    assert path.read_bytes() == b"the previous result"
    assert os.listdir(tmp_path) == ["out.mp4"]


def test_rotation_metadata_is_applied(media, tmp_path):
    """A phone's portrait video is stored landscape with a rotation to display it by: frames come upright."""
    rotated = str(tmp_path / "portrait.mp4")
    _ffmpeg("-display_rotation", "90", "-i", media["silent.mp4"], "-c", "copy", rotated)
    info = clips.probe(rotated)
    assert (info.width, info.height) == (HEIGHT, WIDTH)
    assert next(clips.read_frames(rotated)).shape == (WIDTH, HEIGHT, 3)


def test_a_block_without_frames_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        with clips.VideoWriter(tmp_path / "out.mp4", FRAME_RATE, WIDTH, HEIGHT):
            pass
    assert os.listdir(tmp_path) == []


def test_a_directory_that_cannot_be_created_is_a_one_line_write_error(tmp_path):
    (tmp_path / "a_file").write_bytes(b"")
    path = str(tmp_path / "a_file" / "videos" / "out.mp4")
    with pytest.raises(WriteError, match=re.escape(f"cannot write {path}: Not a directory")) as error:
        with clips.VideoWriter(path, FRAME_RATE, WIDTH, HEIGHT):
            pass
    assert "\n" not in str(error.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only directories")
def test_a_read_only_directory_is_a_one_line_write_error(tmp_path):
    os.chmod(tmp_path, 0o500)
    try:
        with pytest.raises(WriteError, match="Permission denied") as error:
            with clips.VideoWriter(tmp_path / "out.mp4", FRAME_RATE, WIDTH, HEIGHT):
                pass
    finally:
        os.chmod(tmp_path, 0o700)
    assert "\n" not in str(error.value)


def test_an_ffmpeg_that_cannot_finish_the_file_is_a_write_error(frames, tmp_path):
    """A file size limit stands in for a full disk: ffmpeg is stopped while writing, and nothing is left."""
    path = tmp_path / "out.mp4"
    path.write_bytes(b"the previous result")
    noise = [np.random.default_rng(index).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8) for index in range(6)]
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # ffmpeg inherits the limit when the writer starts it; six frames of noise do not fit in 4 KB.
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(WriteError, match="ffmpeg was stopped: File size limit exceeded") as error:
            with clips.VideoWriter(path, FRAME_RATE, WIDTH, HEIGHT) as writer:
                for frame in noise:
                    writer.write(frame)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert "\n" not in str(error.value)
    assert path.read_bytes() == b"the previous result"
    assert os.listdir(tmp_path) == ["out.mp4"]


def test_writer_refuses_bad_arguments(tmp_path):
    with pytest.raises(UsageError, match=r"\.webm"):
        clips.VideoWriter(tmp_path / "out.webm", FRAME_RATE, WIDTH, HEIGHT)
    with pytest.raises(UsageError, match="is a directory"):
        clips.VideoWriter(tmp_path, FRAME_RATE, WIDTH, HEIGHT)
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(UsageError, match="is a directory"):
        clips.VideoWriter(tmp_path / "dir.mp4", FRAME_RATE, WIDTH, HEIGHT)
    with pytest.raises(UsageError, match="frame rate"):
        clips.VideoWriter(tmp_path / "out.mp4", 0, WIDTH, HEIGHT)
    with pytest.raises(UsageError, match="does not exist"):
        clips.VideoWriter(tmp_path / "out.mp4", FRAME_RATE, WIDTH, HEIGHT, audio_from=tmp_path / "missing.wav")


def test_a_frame_of_the_wrong_shape_is_a_bug(frames, tmp_path):
    with pytest.raises(ValueError, match=r"\[48, 64, 3\]"):
        with clips.VideoWriter(tmp_path / "out.mp4", FRAME_RATE, WIDTH, HEIGHT) as writer:
            writer.write(frames[0][:, :32])
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("make, message", [
    (lambda path: path.write_bytes(np.random.default_rng(0).bytes(20_000)), "is not a video ffmpeg can read"),
    (lambda path: path.write_text("not a video\n"), "is not a video ffmpeg can read"),
    (lambda path: path.mkdir(), "is a directory"),
    (lambda path: None, "does not exist"),
])
def test_files_that_are_not_videos(tmp_path, make, message):
    path = tmp_path / "clip.mp4"
    make(path)
    with pytest.raises(UsageError, match=message):
        clips.read_frames(path)
    with pytest.raises(UsageError, match=message):
        clips.probe(path)


def test_a_file_with_only_audio(media):
    with pytest.raises(UsageError, match="has no video stream, only audio"):
        clips.read_frames(media["tone.m4a"])


def test_a_music_file_with_a_cover_picture(media, frames, tmp_path):
    """The cover is a one-frame video stream marked as an attached picture: not a video."""
    cover, music = str(tmp_path / "cover.png"), str(tmp_path / "music.m4a")
    save_image(cover, frames[0])
    _ffmpeg("-i", media["tone.m4a"], "-i", cover, "-map", "0", "-map", "1", "-c", "copy", "-disposition:v",
            "attached_pic", music)
    with pytest.raises(UsageError, match="has no video stream, only audio"):
        clips.read_frames(music)


def test_an_mp4_cut_before_its_index(tmp_path):
    """ffmpeg's default MP4 has its index at the end: half the file cannot be opened at all."""
    whole = str(tmp_path / "whole.mp4")
    _ffmpeg("-f", "lavfi", "-i", f"testsrc=size={WIDTH}x{HEIGHT}:rate=12:duration=1", "-c:v", "libx264",
            "-pix_fmt", "yuv420p", whole)
    data = open(whole, "rb").read()
    (tmp_path / "half.mp4").write_bytes(data[:len(data) // 2])
    with pytest.raises(UsageError, match="is incomplete: its index"):
        clips.read_frames(tmp_path / "half.mp4")


def test_an_mp4_cut_after_its_index_fails_after_the_frames_it_has(tmp_path):
    """An MP4 written for streaming has its index first: cut at four fifths (the index is a large part of so
    small a file), it opens, decodes some of the frames the index states, then says what is wrong."""
    whole = str(tmp_path / "whole.mp4")
    _ffmpeg("-f", "lavfi", "-i", f"testsrc=size={WIDTH}x{HEIGHT}:rate=12:duration=3", "-c:v", "libx264",
            "-pix_fmt", "yuv420p", "-movflags", "+faststart", whole)
    data = open(whole, "rb").read()
    (tmp_path / "cut.mp4").write_bytes(data[:len(data) * 4 // 5])
    frames = clips.read_frames(tmp_path / "cut.mp4")
    decoded = []
    with pytest.raises(UsageError, match=r"truncated or corrupt: decoding stopped after \d+ of the 36 frames it "
                                         r"states \(.+\)"):
        for frame in frames:
            decoded.append(frame)
    assert 0 < len(decoded) < 33


def test_an_mp4_cut_before_its_first_frame_decodes(media, tmp_path):
    data = open(media["silent.mp4"], "rb").read()
    (tmp_path / "half.mp4").write_bytes(data[:len(data) // 2])
    with pytest.raises(UsageError, match=r"truncated or corrupt: no frame of it decodes \(.+\)"):
        clips.read_frames(tmp_path / "half.mp4")


def test_a_frame_count_estimated_from_a_longer_audio_track_is_not_truncation(tmp_path):
    """Matroska states no frame count: OpenCV estimates it from the duration, which is the audio's 4 s."""
    path = str(tmp_path / "long_audio.mkv")
    _ffmpeg("-f", "lavfi", "-i", f"testsrc=size={WIDTH}x{HEIGHT}:rate=12:duration=1", "-f", "lavfi",
            "-i", "sine=frequency=440:duration=4", "-map", "0:v", "-map", "1:a", "-c:v", "libx264",
            "-pix_fmt", "yuv420p", "-c:a", "aac", path)
    assert clips.probe(path).num_frames == 48
    assert len(list(clips.read_frames(path))) == 12


def test_a_frame_of_another_size_is_named(media, monkeypatch):
    """OpenCV scales every frame to the first one's size itself; a reader that did not would be caught."""
    cv2 = dependencies.opencv()

    class ChangingSize:
        def __init__(self, *arguments):
            self.sizes = iter([(HEIGHT, WIDTH), (HEIGHT, WIDTH), (60, 80)])

        def isOpened(self):
            return True

        def read(self):
            return True, np.zeros((*next(self.sizes), 3), np.uint8)

        def get(self, property_id):
            return 3

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", ChangingSize)
    with pytest.raises(UsageError, match="frame 2 is 80x60 pixels, frame 0 64x48"):
        list(clips.read_frames(media["silent.mp4"]))


@pytest.mark.parametrize("module, how", [("cv2", "reinstall tf_style with pip install -e ."),
                                         ("imageio_ffmpeg", "install it with pip install -e '.[video]'")])
def test_a_missing_package_says_how_to_install_it(module, how, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    with pytest.raises(UsageError, match="video needs .*" + re.escape(how)):
        dependencies.opencv() if module == "cv2" else dependencies.ffmpeg_executable()


def test_frame_folder(frames, tmp_path):
    directory = tmp_path / "frames"
    assert clips.existing_frames(directory) == [] and clips.first_missing_frame(directory) == 0
    assert clips.frame_path(directory, 7) == str(directory / "frame_000007.png")
    for index in (0, 1, 2, 4):
        clips.save_frame(directory, index, frames[index])
    (directory / ".frame_000003.png.abcd.tmp").write_bytes(b"half a frame")  # what an interrupted write leaves
    (directory / "notes.txt").write_text("")
    assert clips.existing_frames(directory) == [0, 1, 2, 4]
    assert clips.first_missing_frame(directory) == 3
    np.testing.assert_array_equal(load_image(clips.frame_path(directory, 4)), frames[4])
    clips.save_frame(directory, 1_234_567, frames[0])
    assert clips.existing_frames(directory)[-1] == 1_234_567
