"""Videos in and out: frames streamed from a file, frames encoded to H.264 with the source's audio, and
folders of numbered frame images (the resumable form of a run).

Memory stays flat in the length of a clip: `read_frames` decodes one frame at a time (OpenCV) and
`VideoWriter` pipes each frame to an ffmpeg process as it comes. Frames are uint8 RGB [H, W, 3].

A video file, like every file the tool writes, appears complete or not at all: `VideoWriter` encodes to a
temporary file in the target's directory and renames it into place when the encoder has finished.
"""

import dataclasses
import errno
import os
import re
import signal
import subprocess
import tempfile
from typing import Iterator

import numpy as np

from tf_style.errors import UsageError, WriteError
from tf_style.images import save_image
from tf_style.video.dependencies import ffmpeg_executable, opencv

# Containers that take H.264 video and AAC audio (WebM takes neither, AVI no AAC worth playing).
OUTPUT_VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv")

# x264's constant quality: 18 is about visually lossless; the default (23) smears the fine brush texture a
# style transfer paints, which is the point of the picture.
_QUALITY = "18"

# A frame count read from the container is exact for MP4 and MOV but estimated from the duration for
# Matroska and WebM, where the duration is the longest stream's; a few frames either way are also normal
# (edit lists, a last frame without duration). Only a larger shortfall, confirmed by the demuxer's own
# errors, is reported as a truncated file.
_FRAME_COUNT_TOLERANCE = 2
_FRAME_COUNT_TOLERANCE_FRACTION = 0.01

_FRAME_NAME = re.compile(r"^frame_(\d{6,})\.png$")


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What `probe` reads from a video file.

    Attributes:
        frame_rate: frames per second (the container's average rate for a variable-rate video; 0 if it
            states none).
        num_frames: the frame count the container states: exact for MP4 and MOV; for Matroska and WebM an
            estimate from the duration, which counts the longest stream (a 1 s video with 4 s of audio says
            40 at 10 frames per second); 0 when the container does not say. `read_frames` yields the real
            frames.
        width, height: the size of the decoded frames, rotation metadata applied (as `read_frames` yields them).
        has_audio: the file has an audio stream.
    """
    frame_rate: float
    num_frames: int
    width: int
    height: int
    has_audio: bool


def uint8_frame(frame: np.ndarray) -> np.ndarray:
    """A frame as uint8 RGB [H, W, 3]: uint8 as it is, floats in [0, 255] rounded and clipped (as
    `images.save_image` rounds them), so that every function here takes the package's float images too."""
    frame = np.asarray(frame)
    if frame.dtype == np.uint8:
        return frame
    return np.clip(np.rint(frame.astype(np.float32)), 0, 255).astype(np.uint8)


def probe(path) -> VideoInfo:
    """Reads a video's frame rate, frame count, frame size and whether it has audio.

    Decodes the first frame (for its size), not the rest.

    Raises:
        UsageError: the file is missing, not a video, has no video stream, or no frame of it decodes.
    """
    path = os.fspath(path)
    cv2 = opencv()
    capture, first_frame, report = _open_video(path)
    try:
        frame_rate = capture.get(cv2.CAP_PROP_FPS)
        num_frames = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
    finally:
        capture.release()
    height, width = first_frame.shape[:2]
    return VideoInfo(frame_rate=frame_rate, num_frames=num_frames, width=width, height=height,
                     has_audio="Audio" in _stream_kinds(report))


def read_frames(path) -> Iterator[np.ndarray]:
    """The frames of a video in order, decoded one at a time: uint8 RGB [H, W, 3].

    The file is opened and its first frame decoded before this returns, so that a bad file fails here
    rather than at the first `next`. Rotation metadata (phone videos) is applied: frames come upright.

    Raises:
        UsageError: here, the file is missing, not a video, has no video stream, or no frame of it decodes;
            while iterating, a frame differs in size from the first, or decoding stopped well before the
            frame count the container states and ffmpeg reports the file damaged (truncated or corrupt),
            after the frames that did decode.
    """
    path = os.fspath(path)
    capture, first_frame, _ = _open_video(path)
    return _frames(path, capture, first_frame)


def _frames(path: str, capture, first_frame: np.ndarray) -> Iterator[np.ndarray]:
    cv2 = opencv()
    stated_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    num_decoded = 0
    try:
        frame = first_frame
        while True:
            if frame.shape != first_frame.shape:
                raise UsageError(f"video {path}: frame {num_decoded} is {frame.shape[1]}x{frame.shape[0]} pixels, "
                                 f"frame 0 {first_frame.shape[1]}x{first_frame.shape[0]}; re-encode it at one "
                                 f"size, e.g. ffmpeg -i {path} -vf scale={first_frame.shape[1]}:"
                                 f"{first_frame.shape[0]} fixed.mp4")
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            num_decoded += 1
            decoded, frame = capture.read()
            if not decoded:
                break
    finally:
        capture.release()
    shortfall = stated_count - num_decoded
    if shortfall > max(_FRAME_COUNT_TOLERANCE, _FRAME_COUNT_TOLERANCE_FRACTION * stated_count):
        damage = _demuxer_errors(path)
        if damage:
            raise UsageError(f"video {path} is truncated or corrupt: decoding stopped after {num_decoded} of the "
                             f"{stated_count} frames it states ({damage}); re-download or re-export it")


def _open_video(path: str):
    """(an open cv2.VideoCapture, its first frame as BGR, ffmpeg's report on the file), or the UsageError
    that says why not."""
    if os.path.isdir(path):
        raise UsageError(f"video {path} is a directory; give the path of a video file")
    if not os.path.exists(path):
        raise UsageError(f"video {path} does not exist; check the path")
    if not os.access(path, os.R_OK):
        raise UsageError(f"video {path} cannot be read (permission denied); check its permissions")
    # ffmpeg first: it says what is wrong with a file in terms a message can use, and OpenCV is not left to
    # print its own warnings about a file that is not a video.
    report = _ffmpeg_report(path)
    kinds = _stream_kinds(report)
    if kinds and "Video" not in kinds:
        raise UsageError(f"video {path} has no video stream, only {' and '.join(sorted(set(kinds))).lower()}; "
                         "give a file with pictures")
    if not kinds:
        # An MP4 keeps its index (the moov atom) at the end unless it was written for streaming, so one cut
        # short cannot be opened at all. Random bytes get the same complaint, after a guess ffmpeg doubts.
        if "moov atom not found" in report and "misdetection possible" not in report:
            raise UsageError(f"video {path} is incomplete: its index (the MP4 moov atom) is missing, as in a "
                             "cut-off download or an unfinished recording; re-download or re-export it")
        raise UsageError(f"video {path} is not a video ffmpeg can read ({_last_error_line(report)}); give an MP4, "
                         "MOV, MKV, WebM or AVI file")
    cv2 = opencv()
    # FFmpeg explicitly: with CAP_ANY, OpenCV tries its image-sequence reader on names such as frame_%03d.png.
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    decoded, first_frame = capture.read() if capture.isOpened() else (False, None)
    if not decoded:
        capture.release()
        damage = _demuxer_errors(path)
        if damage:
            raise UsageError(f"video {path} is truncated or corrupt: no frame of it decodes ({damage}); re-download or "
                             "re-export it")
        codec = re.search(r"Video: (\w+)", report).group(1)
        raise UsageError(f"video {path}: OpenCV cannot decode its video ({codec}); re-export it as H.264, e.g. "
                         f"ffmpeg -i {path} -c:v libx264 fixed.mp4")
    return capture, first_frame, report


def _ffmpeg_report(path: str) -> str:
    """What `ffmpeg -i path` prints about a file (its streams, or why it cannot open it)."""
    # With no output file ffmpeg describes the input and exits with status 1: the description is the point.
    result = subprocess.run([ffmpeg_executable(), "-hide_banner", "-nostdin", "-i", path], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    return result.stderr.decode("utf-8", "replace")


def _stream_kinds(report: str) -> list:
    """The kinds of the streams in an ffmpeg report: "Video", "Audio", "Subtitle", "Data", "Attachment".

    A cover picture in a music file is a one-frame video stream marked "(attached pic)"; it is not a video.
    """
    kinds = []
    for kind, description in re.findall(r"^\s*Stream #\d+:\d+\S*: (\w+): (.*)$", report, re.MULTILINE):
        if not (kind == "Video" and "(attached pic)" in description):
            kinds.append(kind)
    return kinds


def _demuxer_errors(path: str) -> str:
    """The first error ffmpeg reports while reading all of the video stream's packets, or "" if none.

    Reads the packets without decoding them (stream copy), so it costs a pass over the file, not a decode.
    """
    result = subprocess.run([ffmpeg_executable(), "-hide_banner", "-nostdin", "-v", "error", "-i", path,
                             "-map", "0:v:0", "-c", "copy", "-f", "null", "-"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    lines = _error_lines(result.stderr.decode("utf-8", "replace"))
    return lines[0] if lines else ""


def _error_lines(report: str) -> list:
    """ffmpeg's message lines without the "[component @ 0x...]" prefixes."""
    return [re.sub(r"^(\[[^\]]*\]\s*)+", "", line).strip() for line in report.splitlines() if line.strip()]


def _last_error_line(report: str) -> str:
    lines = [line for line in _error_lines(report) if line != "At least one output file must be specified"]
    return lines[-1].split(": ")[-1] if lines else "no details"


class VideoWriter:
    """Encodes frames to an H.264 video (libx264, yuv420p), with the audio of another file if it has any.

        with VideoWriter("out.mp4", info.frame_rate, info.width, info.height, audio_from="in.mp4") as writer:
            for frame in frames:
                writer.write(frame)

    Frames go to an ffmpeg process through a pipe as they are written, and it encodes them into a temporary
    file in the target's directory; when the with-block ends, a second ffmpeg adds the audio (copying the
    video as it is) into another temporary file. Only when the block ends normally and ffmpeg succeeds is the
    result renamed to `path`; after an exception in the block, or a failure of ffmpeg, the temporary files are
    removed and `path` is left as it was (absent, or the previous file).

    H.264 in yuv420p stores colour at half resolution and needs an even width and height: an odd one is
    padded with a copy of the last column or row, so the file is one pixel wider or taller than the frames.

    The audio (the first audio stream of `audio_from`) is cut to the video's length (a shorter one ends
    early; the video is never cut) and re-encoded as AAC, because the source's codec may not fit the output
    container (PCM from a .mov, Vorbis from a .webm).

    Args:
        path: the video to write; its extension is one of `OUTPUT_VIDEO_EXTENSIONS`. Missing directories are
            created.
        frame_rate: frames per second.
        width, height: the size of the frames.
        audio_from: a file whose audio track to copy (usually the source video); None, or a file without
            audio, gives a silent video.

    Raises:
        UsageError: on construction: an extension that cannot hold H.264, a directory at `path`, a frame rate
            that is not positive, a size below one pixel, an `audio_from` that does not exist.
        WriteError: on entering, the directory cannot be created or written; on `write` or at the end of the
            block, ffmpeg failed (a full disk, a file size limit, ...).
    """

    def __init__(self, path, frame_rate: float, width: int, height: int, audio_from=None):
        self.path = os.fspath(path)
        if os.path.isdir(self.path):
            raise UsageError(f"output {self.path} is a directory; give a file name such as "
                             f"{os.path.join(self.path, 'result.mp4')}")
        self._extension = os.path.splitext(self.path)[1].lower()
        if self._extension not in OUTPUT_VIDEO_EXTENSIONS:
            raise UsageError(f"output {self.path}: cannot write an H.264 video to a {self._extension or 'nameless'!r} "
                             f"file; use one of {', '.join(OUTPUT_VIDEO_EXTENSIONS)}")
        if not (np.isfinite(frame_rate) and frame_rate > 0):
            raise UsageError(f"the frame rate must be a positive number of frames per second, got {frame_rate}")
        if width < 1 or height < 1:
            raise UsageError(f"a video's frames need at least one pixel on each side, got {width}x{height}")
        self.frame_rate = float(frame_rate)
        self.width = int(width)
        self.height = int(height)
        self._audio_from = None
        if audio_from is not None:
            audio_from = os.fspath(audio_from)
            if not os.path.isfile(audio_from):
                raise UsageError(f"audio source {audio_from} does not exist; check the path")
            if "Audio" in _stream_kinds(_ffmpeg_report(audio_from)):
                self._audio_from = audio_from
        self.num_frames = 0
        self._encoder = None
        self._encoder_messages = None
        self._temporary_paths = []

    def __enter__(self) -> "VideoWriter":
        executable = ffmpeg_executable()
        video_path = self._temporary_file()
        padded_width, padded_height = self.width + self.width % 2, self.height + self.height % 2
        command = [executable, "-hide_banner", "-nostats", "-loglevel", "error", "-y",
                   "-f", "rawvideo", "-pix_fmt", "rgb24", "-video_size", f"{padded_width}x{padded_height}",
                   "-framerate", repr(self.frame_rate), "-i", "pipe:0",
                   "-c:v", "libx264", "-crf", _QUALITY, "-pix_fmt", "yuv420p"]
        if not self._audio_from:
            command += self._container_options()
        # ffmpeg's messages go to a file, not to a pipe nobody reads while frames are written: a full pipe
        # would block ffmpeg, and with it this process.
        self._encoder_messages = tempfile.TemporaryFile()
        try:
            self._encoder = subprocess.Popen(command + [video_path], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                             stderr=self._encoder_messages)
        except BaseException:
            self._clean_up()
            raise
        return self

    def write(self, frame: np.ndarray) -> None:
        """Appends a frame: uint8 RGB [height, width, 3], or floats in [0, 255] (rounded, clipped).

        Raises:
            ValueError: the frame's shape is not [height, width, 3] (a bug in the caller).
            WriteError: ffmpeg has stopped (a full disk, ...).
        """
        if self._encoder is None:
            raise RuntimeError("VideoWriter.write is for inside its with-block")
        frame = uint8_frame(frame)
        if frame.shape != (self.height, self.width, 3):
            raise ValueError(f"expected a frame of shape {[self.height, self.width, 3]}, got {list(frame.shape)}")
        frame = np.pad(frame, ((0, self.height % 2), (0, self.width % 2), (0, 0)), mode="edge")
        try:
            self._encoder.stdin.write(frame.tobytes())
        except BrokenPipeError:
            raise self._encoder_failure() from None
        self.num_frames += 1

    def __exit__(self, exception_type, exception, traceback) -> bool:
        try:
            if exception_type is None:
                self._finish()
        finally:
            self._clean_up()
        return False

    def _finish(self) -> None:
        """Ends the encoding, adds the audio, and renames the result to `path`."""
        if self.num_frames == 0:
            raise ValueError(f"no frames were written; {self.path} was not created")
        try:
            self._encoder.stdin.close()
        except BrokenPipeError:
            pass  # ffmpeg has stopped; its status says why
        if self._encoder.wait() != 0:
            raise self._encoder_failure()
        result_path = self._temporary_paths[0]
        if self._audio_from:
            result_path = self._temporary_file()
            # -t before the audio input reads only as much audio as there is video; the video is copied.
            command = [ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
                       "-i", self._temporary_paths[0], "-t", repr(self.num_frames / self.frame_rate),
                       "-i", self._audio_from, "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
                       "-c:a", "aac", "-b:a", "192k", *self._container_options(), result_path]
            muxer = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, check=False)
            if muxer.returncode != 0:
                raise _ffmpeg_failure(self.path, muxer.returncode, muxer.stderr)
        try:
            # As files.write_atomically: the data on disk before the rename, the permissions `open` gives.
            with open(result_path, "rb") as encoded:
                os.fsync(encoded.fileno())
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(result_path, 0o666 & ~umask)
            os.replace(result_path, self.path)
        except OSError as error:
            raise WriteError(self.path, error) from None

    def _temporary_file(self) -> str:
        """A new temporary file next to `path`, to be removed by `_clean_up` unless renamed to `path`."""
        directory = os.path.dirname(os.path.abspath(self.path))
        name = os.path.splitext(os.path.basename(self.path))[0]
        try:
            os.makedirs(directory, exist_ok=True)
            # The container's extension last: ffmpeg picks the muxer from it.
            handle, temporary_path = tempfile.mkstemp(dir=directory, prefix=f".{name}.",
                                                      suffix=f".tmp{self._extension}")
            os.close(handle)
        except OSError as error:
            raise WriteError(self.path, error) from None
        self._temporary_paths.append(temporary_path)
        return temporary_path

    def _container_options(self) -> list:
        # MP4 and MOV with the index at the front, so that a player can start before the whole file arrived.
        return [] if self._extension == ".mkv" else ["-movflags", "+faststart"]

    def _encoder_failure(self) -> WriteError:
        self._encoder.wait()
        self._encoder_messages.seek(0)
        return _ffmpeg_failure(self.path, self._encoder.returncode, self._encoder_messages.read())

    def _clean_up(self) -> None:
        """Stops ffmpeg if it still runs and removes the temporary files that were not renamed to `path`."""
        if self._encoder is not None:
            if self._encoder.poll() is None:
                self._encoder.kill()
            self._encoder.wait()
            try:
                self._encoder.stdin.close()
            except BrokenPipeError:
                pass
            self._encoder = None
        if self._encoder_messages is not None:
            self._encoder_messages.close()
            self._encoder_messages = None
        for temporary_path in self._temporary_paths:
            if os.path.exists(temporary_path):
                os.remove(temporary_path)
        self._temporary_paths = []


def _ffmpeg_failure(path: str, status: int, messages: bytes) -> WriteError:
    """The error for an ffmpeg that stopped with a non-zero status: its last message, or the signal."""
    if status < 0:
        reason = f"ffmpeg was stopped: {signal.strsignal(-status) or signal.Signals(-status).name}"
    else:
        lines = _error_lines(messages.decode("utf-8", "replace"))
        reason = f"ffmpeg failed: {lines[-1] if lines else f'exit status {status}'}"
    return WriteError(path, OSError(errno.EIO, reason))


def frame_path(directory, index: int) -> str:
    """The file of frame `index` (from 0) in a frame folder: `directory/frame_000042.png`.

    Six digits at least, so that names sort in frame order up to a million frames (9 hours at 30 frames per
    second); beyond that the number grows a digit and `existing_frames` still reads it.
    """
    return os.path.join(os.fspath(directory), f"frame_{index:06d}.png")


def save_frame(directory, index: int, frame: np.ndarray) -> None:
    """Writes frame `index` to a frame folder, atomically (`images.save_image`): complete or absent.

    Args:
        frame: RGB [H, W, 3], uint8 or floats in [0, 255].

    Raises:
        WriteError: the file could not be written.
    """
    save_image(frame_path(directory, index), frame)


def existing_frames(directory) -> list:
    """The indices of the frames a frame folder holds, in order; [] for a missing folder.

    Only complete frames count: `save_frame`'s temporary files are hidden names that do not match.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        return []
    indices = (_FRAME_NAME.match(name) for name in os.listdir(directory))
    return sorted(int(match.group(1)) for match in indices if match)


def first_missing_frame(directory) -> int:
    """The first frame index a frame folder lacks: where a resumed run starts (0 for an empty folder)."""
    present = set(existing_frames(directory))
    index = 0
    while index in present:
        index += 1
    return index
