"""tf_style.video.shots: cuts between two bundled photos are found at the exact frame; a pan and zoom within
one photo has none; a burst of cuts shorter than a shot counts once."""

import os

import numpy as np
import pytest

from tf_style.images import load_image
from tf_style.video import clips
from tf_style.video.shots import is_cut, shot_boundaries
from tf_style.video.synthetic import pan_and_zoom

HEIGHT, WIDTH = 48, 64
PHOTOS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tf_style", "samples", "photos")


def _shot(name, num_frames):
    """A fast pan and zoom (3 px and 3% a frame) over a bundled photo: the motion a cut must stand out from."""
    photo = load_image(os.path.join(PHOTOS, f"{name}.jpg"))
    return list(pan_and_zoom(photo, num_frames, HEIGHT, WIDTH, (3.0, 2.0), 1.03))


@pytest.mark.parametrize("first, second", [("chelsea", "coffee"), ("astronaut", "tubingen"),
                                           ("coffee", "astronaut")])
def test_a_cut_between_two_photos_is_found_at_its_frame(first, second):
    frames = _shot(first, 6) + _shot(second, 6)
    assert is_cut(frames[5], frames[6])
    assert not is_cut(frames[4], frames[5]) and not is_cut(frames[6], frames[7])
    assert shot_boundaries(iter(frames)) == [6]


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "tubingen"])
def test_a_pan_and_zoom_has_no_cut(name):
    assert shot_boundaries(_shot(name, 12)) == []


def test_a_burst_of_cuts_counts_once():
    chelsea, coffee = _shot("chelsea", 12), _shot("coffee", 1)
    flash = chelsea[:6] + coffee + chelsea[7:]  # one frame of another shot
    assert shot_boundaries(flash) == [6]
    assert shot_boundaries(flash, min_shot_length=1) == [6, 7]
    assert shot_boundaries(coffee + chelsea[:11]) == []  # a cut at frame 1 would start a shot too soon


def test_float_frames_and_a_video_file(tmp_path):
    frames = _shot("tubingen", 6) + _shot("chelsea", 6)
    assert shot_boundaries([frame.astype(np.float32) for frame in frames]) == [6]
    path = tmp_path / "two_shots.mp4"
    with clips.VideoWriter(path, 12, WIDTH, HEIGHT) as writer:
        for frame in frames:
            writer.write(frame)
    assert shot_boundaries(path) == [6]
