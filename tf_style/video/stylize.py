"""A video stylized frame by frame, each frame held to the results before it (Ruder, Dosovitskiy & Brox 2016).

The first frame of each shot is a whole coarse-to-fine stylization. Every later frame:
1. estimates the optical flow, both ways, between its photo and the photos 1, 2 and 4 frames back
   (`LONG_TERM_OFFSETS`), and from each pair the pixels where that flow can be trusted
   (`flow.consistency_weights`: not disoccluded, not on a motion boundary), made long-term weights so that
   each pixel is held by its nearest trusted earlier frame only (`flow.long_term_weights`);
2. starts from the last result carried along the flow onto it, with the pixels that were not visible before
   taken from its photo;
3. runs `config.frame_steps` Adam steps at the output size on the library's objective plus the temporal term
   (`terms.TemporalTerm`): the squared difference from the earlier results carried onto it, weighted.
A shot cut (`shots.is_cut`) starts over, so no frame is held to the frame of another shot.

Results go to a frame folder as they are made, one PNG per frame, written atomically; a run that stops (Ctrl-C,
a crash) keeps them, and the same call carries on from the first missing frame, reading the earlier results
it needs from the folder. A video file is encoded from the folder at the end (`clips.VideoWriter`: a temporary
name, then a rename), with the source's sound.
"""

import collections
import dataclasses
import os
import shutil
import time
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from tf_style import images, pairs
from tf_style.stylizer import Stylizer
from tf_style.config import StyleConfig
from tf_style.errors import UsageError
from tf_style.files import require_writable_directory
from tf_style.objective.terms import TemporalTerm
from tf_style.optimization.level import Callback
from tf_style.sizes import ints, scaled_size
from tf_style.video import clips, flow, shots

# The earlier frames each frame is held to: the last, and two further back, which keep what a short occlusion
# hid from the last frame (Ruder et al.'s long-term consistency).
LONG_TERM_OFFSETS = (1, 2, 4)
# A clip whose container states no frame rate is written at this one.
FALLBACK_FRAME_RATE = 25.0


@dataclasses.dataclass(frozen=True)
class FrameReport:
    """What `on_frame` sees after each frame.

    Attributes:
        index: the frame's index (from 0).
        num_frames: the frames the clip's container states (0 if it states none; may be a few off).
        seconds: the time this frame took; 0 for a frame a previous run had made.
        elapsed_seconds: since the run started.
        resumed: the frame was read from the frame folder, not stylized.
        shot_start: the frame starts a shot (the first frame, or one after a cut).
    """

    index: int
    num_frames: int
    seconds: float
    elapsed_seconds: float
    resumed: bool
    shot_start: bool


@dataclasses.dataclass(frozen=True)
class EarlierFrame:
    """A frame already done: its photo and its result at the output size, float32 [H, W, 3] (the result None
    for a resumed frame too far back to be looked at)."""

    content: np.ndarray
    result: np.ndarray


class VideoStylizer:
    """Stylizes the frames of videos with one set of options, building the network once.

    Args:
        config: the options; `temporal_weight` and `frame_steps` are the video's.
        log: where one-line notices go; None for silence.
    """

    def __init__(self, config: StyleConfig, log=print):
        if config.checkpoint_dir:
            raise UsageError("--checkpoint_dir resumes one image's run; a video resumes from the frames it has "
                             "written: drop --checkpoint_dir")
        self.config = config
        self._first = Stylizer(config, log=log)
        self._later = self._first.sharing_network(initial_size=0, steps=config.frame_steps, init="content")
        self._temporal = TemporalTerm(config.temporal_weight)

    def frame_size(self, height: int, width: int) -> tuple:
        """The results' (height, width) for frames of height x width."""
        return ints(scaled_size(height, width, self.config.size))

    def stylize_frames(self, frames: Iterable[np.ndarray], style, frames_dir: str, num_frames: int = 0,
                       on_frame: Optional[Callable[[FrameReport], None]] = None,
                       callbacks: Sequence[Callback] = (), first_index: int = 0) -> int:
        """Stylizes `frames` (uint8 RGB [H, W, 3] each, one size) into `frames_dir`; returns the index after the
        last frame.

        Frames whose results `frames_dir` already holds are not stylized again (a resumed run).

        Args:
            style: the painting, as for `tf_style.stylize` (a path, an array, or a list to blend).
            num_frames: the clip's stated length, for the reports.
            on_frame: called after each frame.
            callbacks: called with each frame's optimization's reports.
            first_index: the index of the first of `frames` in its clip (a shot of a longer clip, which starts
                a shot of its own).

        Raises:
            Interrupted: Ctrl-C; the frames finished are in `frames_dir`.
            DivergedError: a frame's optimization diverged; the frames before it are in `frames_dir`.
        """
        done = set(clips.existing_frames(frames_dir))
        # A frame to stylize looks back at most this far, so a resumed frame before it is never read back.
        first_read_back = clips.first_missing_frame(frames_dir) - max(LONG_TERM_OFFSETS)
        earlier = collections.deque(maxlen=max(LONG_TERM_OFFSETS))
        start_time = time.perf_counter()
        count = first_index
        for index, frame in enumerate(frames, start=first_index):
            frame_start = time.perf_counter()
            content = images.resize(np.asarray(frame, np.float32), *self.frame_size(*frame.shape[:2]))
            shot_start = not earlier or shots.is_cut(earlier[-1].content, content)
            if shot_start:
                earlier.clear()
            resumed = index in done
            if resumed:
                result = (images.load_image(clips.frame_path(frames_dir, index), "stylized frame")
                          if index >= first_read_back else None)
            else:
                result = self.stylize_frame(content, style, list(earlier), callbacks)
                clips.save_frame(frames_dir, index, result)
            earlier.append(EarlierFrame(content, result))
            count = index + 1
            if on_frame is not None:
                now = time.perf_counter()
                on_frame(FrameReport(index, num_frames, 0.0 if resumed else now - frame_start, now - start_time,
                                     resumed, shot_start))
        return count

    def stylize_frame(self, content: np.ndarray, style, earlier: Sequence[EarlierFrame],
                      callbacks: Sequence[Callback] = ()) -> np.ndarray:
        """One frame's result, float32 [H, W, 3]: `content` (at the output size) held to the `earlier` frames'
        results (oldest first; none: the frame starts a shot and is stylized as a still)."""
        if not earlier:
            return self._first.stylize(content, style, callbacks)
        warped, weights = [], []
        # Every offset has a slot, with zero weight when the shot is younger than it: one traced step serves all.
        for offset in LONG_TERM_OFFSETS:
            if offset > len(earlier):
                warped.append(content)
                weights.append(np.zeros(content.shape[:2], np.float32))
                continue
            before = earlier[-offset]
            backward = flow.optical_flow(content, before.content)
            forward = flow.optical_flow(before.content, content)
            warped.append(flow.warp(before.result, backward))
            weights.append(flow.consistency_weights(forward, backward))
        # The last result where it can be carried over; the photo where the pixel was not visible before.
        trusted = weights[0][..., None]
        start = trusted * warped[0] + (1.0 - trusted) * content
        targets = {"previous": np.stack(warped)[None], "weights": np.stack(flow.long_term_weights(weights))[None]}
        return self._later.stylize(content, style, callbacks, start=start, extra_terms=[self._temporal],
                                   extra_targets={self._temporal.name: targets})


def frames_dir_for(output: str) -> str:
    """Where the frames of a run writing `output` go: the folder `output` itself, or for a video file the
    folder beside it, `<output>.frames`, which holds the run's progress until the video is written."""
    return output + ".frames" if pairs.is_video_path(output) else output


def stylize_video(content: str, style, output: str, config: Optional[StyleConfig] = None, log=print,
                  on_frame: Optional[Callable[[FrameReport], None]] = None, callbacks: Sequence[Callback] = (),
                  **options) -> int:
    """Stylizes the video `content` into `output`: a video file (.mp4, .m4v, .mov, .mkv) with the clip's frame
    rate and sound, or a folder of frames (frame_000000.png, ...). Returns the number of frames.

    Stopped and called again with the same arguments, it carries on from the first frame it had not finished.

    Args:
        content: the video's path (any format OpenCV and FFmpeg read).
        style: the painting: a path, an array, or a list to blend.
        config: a StyleConfig; `options` override its fields. None starts from the defaults.
        log: where one-line notices go; None for silence.
        on_frame: called after each frame with a `FrameReport`.
        callbacks: called with each frame's optimization's reports.

    Raises:
        UsageError: a missing, corrupt or truncated video, one with no video stream, an output that cannot be
            written, or the `video` extra missing.
        WriteError: a frame or the video could not be written; nothing half-written is left.
        Interrupted, DivergedError: as `VideoStylizer.stylize_frames`; the frames done are kept.
    """
    config = config.replace(**options) if config is not None else StyleConfig(**options)
    info = clips.probe(content)
    frames_dir = frames_dir_for(output)
    as_video = frames_dir != output
    if as_video and os.path.isdir(output):
        raise UsageError(f"output {output} is a directory; give a file name such as "
                         f"{os.path.join(output, 'result.mp4')}, or the directory alone for a folder of frames")
    require_writable_directory(frames_dir, "the stylized frames", "--output")
    stylizer = VideoStylizer(config, log)
    count = stylizer.stylize_frames(clips.read_frames(content), style, frames_dir, info.num_frames, on_frame,
                                    callbacks)
    if as_video:
        encode_frames(frames_dir, count, output, content)
    return count


def encode_frames(frames_dir: str, count: int, output: str, content: str) -> None:
    """Encodes the first `count` frames of `frames_dir` into the video `output`, at the frame rate and with the
    sound of the clip `content`, then removes the folder.

    Raises:
        UsageError: a frame is missing from the folder.
        WriteError: the video could not be written; the folder is kept.
    """
    missing = sorted(set(range(count)) - set(clips.existing_frames(frames_dir)))
    if missing:
        raise UsageError(f"{frames_dir} lacks frame {missing[0]} of {count}; run the stylization again to make it")
    frame_rate = clips.probe(content).frame_rate or FALLBACK_FRAME_RATE
    frames = (images.load_image(clips.frame_path(frames_dir, index), "stylized frame") for index in range(count))
    first = next(frames)
    with clips.VideoWriter(output, frame_rate, first.shape[1], first.shape[0], audio_from=content) as writer:
        writer.write(first)
        for frame in frames:
            writer.write(frame)
    shutil.rmtree(frames_dir)
