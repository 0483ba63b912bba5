"""Where a clip cuts from one shot to the next, so that the temporal loss never ties a frame to the frame
before a cut (the flow between them means nothing, and the new shot should start afresh).

A cut is a jump in the colour distribution: the Bhattacharyya distance between the HSV histograms of
consecutive frames. Motion within a shot (a pan, a zoom, someone walking) changes which pixels show what but
hardly how many of each colour there are. Gradual transitions (fades, dissolves) are not cuts and are not
reported: their frames change little from one to the next.
"""

import os
from typing import Iterable, Union

import numpy as np

from tf_style.video.clips import read_frames, uint8_frame
from tf_style.video.dependencies import opencv

# Bhattacharyya distances (0: the same colours, 1: none in common). On the bundled photos at 64x48, cuts
# between two of them measure 0.56 to 0.87 and a fast pan and zoom over one of them (3 px and 3% a frame)
# about 0.17 at most; 0.4 lies between, with room on both sides.
CUT_THRESHOLD = 0.4

# A burst of jumps (a flash, a strobe, a few garbled frames) should not restart the video on every frame:
# a cut less than this many frames after the last one reported (or after frame 0) is ignored, and its
# frames count as part of the current shot. Five frames are a fifth of a second at 25 frames per second.
MIN_SHOT_LENGTH = 5

# Coarse bins: hue matters most, saturation and value less; fine bins would turn noise into differences.
_BINS = (8, 4, 4)
_RANGES = (0, 180, 0, 256, 0, 256)  # OpenCV's 8-bit HSV: hue in [0, 180)


def colour_histogram(frame: np.ndarray) -> np.ndarray:
    """The normalized HSV histogram of a frame: float32 [8, 4, 4] summing to 1.

    Args:
        frame: RGB [H, W, 3], uint8 or floats in [0, 255].
    """
    cv2 = opencv()
    hsv = cv2.cvtColor(np.ascontiguousarray(uint8_frame(frame)), cv2.COLOR_RGB2HSV)
    histogram = cv2.calcHist([hsv], [0, 1, 2], None, list(_BINS), list(_RANGES))
    return (histogram / histogram.sum()).astype(np.float32)


def histogram_distance(histogram: np.ndarray, other: np.ndarray) -> float:
    """The Bhattacharyya distance between two `colour_histogram`s: 0 (equal) to 1 (disjoint)."""
    cv2 = opencv()
    return float(cv2.compareHist(histogram, other, cv2.HISTCMP_BHATTACHARYYA))


def is_cut(previous: np.ndarray, frame: np.ndarray, threshold: float = CUT_THRESHOLD) -> bool:
    """Whether `frame` starts a new shot after `previous` (RGB [H, W, 3] each, uint8 or floats in [0, 255])."""
    return histogram_distance(colour_histogram(previous), colour_histogram(frame)) > threshold


def shot_boundaries(frames: Union[str, os.PathLike, Iterable[np.ndarray]], threshold: float = CUT_THRESHOLD,
                    min_shot_length: int = MIN_SHOT_LENGTH) -> list:
    """The indices of the frames that start a new shot after a cut; frame 0 is not listed.

    Args:
        frames: a video file, or its frames in order (RGB [H, W, 3], uint8 or floats in [0, 255]); read once,
            one frame at a time.
        threshold: the histogram distance above which consecutive frames are a cut.
        min_shot_length: a cut less than this many frames after the last one reported (or after frame 0) is
            ignored.

    Returns:
        Increasing frame indices (from 0), e.g. [120, 310] for three shots.

    Raises:
        UsageError: `frames` is a path that `clips.read_frames` cannot read.
    """
    if isinstance(frames, (str, os.PathLike)):
        frames = read_frames(frames)
    boundaries = []
    shot_start = 0
    previous_histogram = None
    for index, frame in enumerate(frames):
        histogram = colour_histogram(frame)
        if (previous_histogram is not None and index - shot_start >= min_shot_length
                and histogram_distance(previous_histogram, histogram) > threshold):
            boundaries.append(index)
            shot_start = index
        previous_histogram = histogram
    return boundaries
