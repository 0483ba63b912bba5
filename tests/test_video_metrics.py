"""tf_style.video.metrics: the warping error is 0 for a video that moves with its input, the exact mean
squared flicker for one that flickers, and blind to the pixels the weights leave out."""

import math
import os

import numpy as np
import pytest

from tf_style.images import load_image
from tf_style.video.flow import consistency_weights
from tf_style.video.metrics import WarpingError, warping_error
from tf_style.video.synthetic import pan_and_zoom, pan_and_zoom_flow

HEIGHT, WIDTH, NUM_FRAMES = 48, 64, 8
SHIFT = (2.0, -1.0)  # whole pixels: warping the previous frame reproduces the next one exactly
PHOTOS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tf_style", "samples", "photos")


@pytest.fixture(scope="module")
def pan():
    """Frames of a pan, kept within [20, 235] so that a flicker of ±10 is never clipped, and the exact
    backward flow and consistency weights shared by every frame after the first."""
    photo = load_image(os.path.join(PHOTOS, "coffee.jpg"))
    frames = [np.clip(frame, 20, 235).astype(np.float32) for frame in pan_and_zoom(photo, NUM_FRAMES, HEIGHT, WIDTH,
                                                                                  SHIFT, 1.0)]
    backward = pan_and_zoom_flow(HEIGHT, WIDTH, SHIFT, 1.0)
    return frames, backward, consistency_weights(-backward, backward)


def _error(outputs, backward, weights) -> WarpingError:
    error = WarpingError()
    for previous, output in zip(outputs, outputs[1:]):
        error.add(previous, output, backward, weights)
    return error


def test_a_video_that_moves_with_its_input_has_no_warping_error(pan):
    frames, backward, weights = pan
    assert weights.min() == 0 and weights.mean() > 0.9  # the strip the pan brings in is left out, nothing more
    error = _error(frames, backward, weights)
    assert error.num_pairs == NUM_FRAMES - 1
    assert error.value == pytest.approx(0, abs=1e-10)


def test_a_flickering_video_scores_its_mean_squared_flicker(pan):
    frames, backward, weights = pan
    flickering = [frame + (10 if index % 2 else -10) for index, frame in enumerate(frames)]
    assert _error(flickering, backward, weights).value == pytest.approx((20 / 255) ** 2, rel=1e-5)
    drifting = [frame + index for index, frame in enumerate(frames)]  # brighter by 1 each frame
    assert _error(drifting, backward, weights).value == pytest.approx((1 / 255) ** 2, rel=1e-4)


def test_pixels_without_weight_do_not_count(pan):
    frames, backward, weights = pan
    excluded = weights == 0
    damaged = frames[1].copy()
    damaged[excluded] = 255 - damaged[excluded]
    assert warping_error(frames[0], damaged, backward, weights) == pytest.approx(0, abs=1e-10)
    assert warping_error(frames[0], damaged, backward, np.ones_like(weights)) > 1e-3
    assert warping_error(frames[0], damaged, backward, np.zeros_like(weights)) == 0  # as Lai et al. count it


def test_uint8_and_float_outputs_score_alike(pan):
    frames, backward, weights = pan
    as_float = warping_error(frames[0], frames[1] + 7, backward, weights)
    as_uint8 = warping_error(frames[0].astype(np.uint8), (frames[1] + 7).astype(np.uint8), backward, weights)
    assert as_uint8 == pytest.approx(as_float) == pytest.approx((7 / 255) ** 2, rel=1e-5)


def test_no_pairs_no_value():
    assert math.isnan(WarpingError().value)
