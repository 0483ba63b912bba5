"""tf_style.video.flow and tf_style.video.synthetic: the flow convention, the estimator against the exact
motion of a synthetic pan and zoom, warping, and Ruder et al.'s consistency and long-term weights."""

import os

import numpy as np
import pytest

from tf_style.images import load_image
from tf_style.video import dependencies
from tf_style.video.flow import consistency_weights, long_term_weights, optical_flow, warp
from tf_style.video.synthetic import pan_and_zoom, pan_and_zoom_flow

HEIGHT, WIDTH = 48, 64
MARGIN = 8  # the interior: where no pixel comes from outside the previous frame, and DIS sees whole patches
PHOTOS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tf_style", "samples", "photos")


def _interior(array: np.ndarray) -> np.ndarray:
    return array[MARGIN:-MARGIN, MARGIN:-MARGIN]


@pytest.fixture(scope="module")
def photo():
    return load_image(os.path.join(PHOTOS, "chelsea.jpg"))


def _two_frames(photo, shift, zoom):
    """Frames 1 and 2 of a pan and zoom, and the exact backward flow of frame 2."""
    _, previous, frame = pan_and_zoom(photo, 3, HEIGHT, WIDTH, shift, zoom)
    return previous, frame, pan_and_zoom_flow(HEIGHT, WIDTH, shift, zoom)


def test_the_flow_points_from_a_pixel_to_where_it_is_in_the_other_frame(photo):
    frame_from = next(pan_and_zoom(photo, 1, HEIGHT, WIDTH, (0, 0), 1.0))
    frame_to = np.roll(frame_from, shift=(1, 2), axis=(0, 1))  # the picture moves 2 px right and 1 px down
    flow = optical_flow(frame_from, frame_to)
    assert flow.dtype == np.float32 and flow.shape == (HEIGHT, WIDTH, 2)
    np.testing.assert_allclose(np.median(_interior(flow), axis=(0, 1)), [2, 1], atol=0.05)


@pytest.mark.parametrize("shift, zoom", [((2.0, 0.0), 1.0), ((-1.0, 3.0), 1.0), ((1.5, -0.5), 1.0),
                                         ((0.3, 0.7), 1.0), ((1.0, 1.0), 1.02), ((0.0, 0.0), 0.98)])
def test_the_estimated_backward_flow_matches_the_true_motion(photo, shift, zoom):
    previous, frame, true_flow = _two_frames(photo, shift, zoom)
    error = np.linalg.norm(optical_flow(frame, previous) - true_flow, axis=-1)
    assert _interior(error).max() < 0.3
    assert _interior(error).mean() < 0.1


def test_the_true_flow_of_a_pan_and_zoom():
    np.testing.assert_allclose(pan_and_zoom_flow(HEIGHT, WIDTH, (3.0, -1.0), 1.0), np.broadcast_to([-3.0, 1.0],
                                                                                                   (HEIGHT, WIDTH, 2)))
    # Zooming in by 2 about the centre: a pixel at distance d from the centre was at d / 2.
    flow = pan_and_zoom_flow(HEIGHT, WIDTH, (0.0, 0.0), 2.0)
    centre_x, centre_y = (WIDTH - 1) / 2, (HEIGHT - 1) / 2
    np.testing.assert_allclose(flow[0, 0], [centre_x / 2, centre_y / 2])
    np.testing.assert_allclose(flow[HEIGHT - 1, WIDTH - 1], [-centre_x / 2, -centre_y / 2])


def test_warp_samples_where_the_flow_points():
    """On a linear ramp, bilinear sampling is exact: warp(ramp, flow)[y, x] = ramp[y + dy, x + dx]."""
    rows, columns = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    ramp = np.stack([2 * columns + 3 * rows, 100 - columns], axis=-1)
    flow = np.broadcast_to(np.float32([1.25, -0.5]), (HEIGHT, WIDTH, 2))
    expected = np.stack([2 * (columns + 1.25) + 3 * (rows - 0.5), 100 - (columns + 1.25)], axis=-1)
    # OpenCV's remap rounds positions to 1/32 pixel.
    np.testing.assert_allclose(_interior(warp(ramp, flow)), _interior(expected), atol=5 / 32)
    np.testing.assert_allclose(warp(ramp[..., 0], flow), warp(ramp, flow)[..., 0])


def test_warp_takes_any_number_of_channels(photo):
    frames = np.concatenate([frame.astype(np.float32) for frame in pan_and_zoom(photo, 2, HEIGHT, WIDTH, (1, 1), 1.0)],
                            axis=-1)
    flow = pan_and_zoom_flow(HEIGHT, WIDTH, (0.5, 0.25), 1.0)
    warped = warp(frames, flow)
    np.testing.assert_array_equal(warped[..., 3:], warp(frames[..., 3:], flow))


def test_warping_the_previous_frame_by_the_backward_flow_gives_the_frame(photo):
    previous, frame, true_flow = _two_frames(photo, (2.0, -1.0), 1.0)
    np.testing.assert_array_equal(_interior(warp(previous.astype(np.float32), true_flow)), _interior(frame))
    previous, frame, _ = _two_frames(photo, (1.0, 1.0), 1.02)
    warped = warp(previous.astype(np.float32), optical_flow(frame, previous))
    warped_difference = np.mean(np.abs(_interior(warped) - _interior(frame)))
    assert warped_difference < 2  # of 255
    assert np.mean(np.abs(_interior(previous.astype(np.float32)) - _interior(frame))) > 5 * warped_difference


def _moving_square_flows(step):
    """Exact flows for a 16 px square moving `step` px right over a still background: frame t-1 has it at
    columns [20, 36), frame t at [20 + step, 36 + step); rows [16, 32)."""
    forward = np.zeros((HEIGHT, WIDTH, 2), np.float32)
    forward[16:32, 20:36, 0] = step
    backward = np.zeros((HEIGHT, WIDTH, 2), np.float32)
    backward[16:32, 20 + step:36 + step, 0] = -step
    return forward, backward


def test_consistency_weights_of_a_moving_square():
    forward, backward = _moving_square_flows(4)
    expected = np.ones((HEIGHT, WIDTH), np.float32)
    expected[16:32, 20:24] = 0  # background the square covered in frame t-1: disoccluded
    # Motion boundaries: central differences of the backward flow are non-zero on both sides of the square's
    # edges in frame t (columns 24 and 39 are its first and last).
    expected[16:32, [23, 24, 39, 40]] = 0
    expected[[15, 16, 31, 32], 24:40] = 0
    weights = consistency_weights(forward, backward)
    assert weights.dtype == np.float32
    np.testing.assert_array_equal(weights, expected)


def test_pixels_that_came_from_outside_the_previous_frame_get_zero():
    forward = np.broadcast_to(np.float32([3, 0]), (HEIGHT, WIDTH, 2))  # a pan: the picture moves 3 px right
    weights = consistency_weights(forward, -forward)
    assert np.all(weights[:, :3] == 0) and np.all(weights[:, 3:] == 1)


def test_consistency_weights_from_estimated_flows():
    """A textured square moving 6 px right over a textured background, 128x96, through DIS: the disoccluded
    strip is zero, the square and most of the background away from it one (DIS smooths the flow over a few
    pixels around the square's edges, which the motion-boundary test then excludes)."""
    height, width = 96, 128
    random = np.random.default_rng(0)
    background = _texture(random, height, width)
    previous, frame = background.copy(), background.copy()
    previous[32:64, 40:72] = frame[32:64, 46:78] = _texture(random, 32, 32)
    weights = consistency_weights(optical_flow(previous, frame), optical_flow(frame, previous))
    assert np.all(weights[36:60, 40:46] == 0)
    assert np.all(weights[40:56, 54:70] == 1)
    far = np.ones((height, width), bool)
    far[20:76, 28:90] = False
    assert weights[far].mean() > 0.9


def _texture(random, height, width):
    """Blurred noise: detail at every scale DIS looks at, uint8 RGB [height, width, 3]."""
    texture = dependencies.opencv().GaussianBlur(random.uniform(0, 255, (height, width, 3)).astype(np.float32),
                                                 (0, 0), 1.5)
    return np.rint(255 * (texture - texture.min()) / (texture.max() - texture.min())).astype(np.uint8)


def test_long_term_weights():
    nearest = np.float32([[1, 1, 0, 0]])
    middle = np.float32([[1, 0, 1, 0]])
    farthest = np.float32([[1, 1, 1, 1]])
    long_term = long_term_weights([nearest, middle, farthest])
    np.testing.assert_array_equal(long_term[0], nearest)  # the previous frame keeps all its weights
    np.testing.assert_array_equal(long_term[1], [[0, 0, 1, 0]])  # only where the previous frame had none
    np.testing.assert_array_equal(long_term[2], [[0, 0, 0, 1]])  # only where neither nearer frame had any
    assert sum(long_term).max() == 1  # each pixel is constrained by at most one earlier frame
    # Weights between 0 and 1 (blurred ones): what the nearer frames' own weights leave, not their long-term ones.
    halves = long_term_weights([np.float32([[0.5]]), np.float32([[0.5]]), np.float32([[1.0]])])
    np.testing.assert_array_equal(np.concatenate(halves), [[0.5], [0], [0]])
