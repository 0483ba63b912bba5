"""Optical flow between frames, warping along it, and where it can be trusted (Ruder et al. 2016, section 3.2).

The convention, for every flow here: float32 [H, W, 2] holding (dx, dy) in pixels on the grid of the frame
the flow starts from,

    optical_flow(frame_from, frame_to)[y, x] = (dx, dy)  where  frame_from[y, x] ≈ frame_to[y + dy, x + dx],

the convention of OpenCV's estimators. So `warp(frame_to, optical_flow(frame_from, frame_to))` ≈ frame_from:
the *backward* flow of frame t, `optical_flow(frame_t, frame_t-1)`, says for each pixel of frame t where it
was in frame t-1, and `warp(stylized_t-1, backward_flow)` is the previous result moved onto frame t, the
target of the temporal loss.
"""

from typing import Sequence

import numpy as np

from tf_style.video.clips import uint8_frame
from tf_style.video.dependencies import opencv

# Ruder et al.'s thresholds (section 3.2), as in their consistencyChecker: a flow that does not return to its
# start within 1% of the motion plus half a pixel squared marks a disocclusion; a flow gradient above 1% of
# the motion plus a small constant, a motion boundary (where flow estimates smear across the edge).
_ROUND_TRIP_RELATIVE = 0.01
_ROUND_TRIP_ABSOLUTE = 0.5
_BOUNDARY_RELATIVE = 0.01
_BOUNDARY_ABSOLUTE = 0.002


def optical_flow(frame_from: np.ndarray, frame_to: np.ndarray) -> np.ndarray:
    """Dense optical flow (OpenCV's DIS, medium preset, on the grey levels) from one frame to another.

    Args:
        frame_from, frame_to: RGB [H, W, 3], uint8 or floats in [0, 255], of one size.

    Returns:
        float32 [H, W, 2]: (dx, dy) with `frame_from[y, x] ≈ frame_to[y + dy, x + dx]` (see the module).
    """
    cv2 = opencv()
    if frame_from.shape != frame_to.shape:
        raise ValueError(f"frames of different shapes: {list(frame_from.shape)} and {list(frame_to.shape)}")
    # DIS is fast (about 20 ms for a 640x360 pair on one core), off by about a tenth of a pixel on average
    # on textured frames (tests/test_video_flow.py), and OpenCV's own: no model weights to fetch.
    estimator = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    grey_from, grey_to = (cv2.cvtColor(np.ascontiguousarray(uint8_frame(frame)), cv2.COLOR_RGB2GRAY)
                          for frame in (frame_from, frame_to))
    return estimator.calc(grey_from, grey_to, None).astype(np.float32)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warping: `warp(image, flow)[y, x] = image[y + dy, x + dx]` with (dx, dy) = `flow[y, x]`.

    Bilinear (OpenCV's remap, which rounds the sampling position to 1/32 pixel); positions outside the image
    take the nearest edge pixel. With `flow` the backward flow of frame t, `warp(image_t-1, flow)` is
    `image_t-1` moved onto frame t.

    Args:
        image: float32 [H, W] or [H, W, C] (any number of channels; a flow field warps as an image of two).
        flow: float32 [H, W, 2] on the output's grid.

    Returns:
        float32, the shape of `image`.
    """
    cv2 = opencv()
    height, width = flow.shape[:2]
    if image.shape[:2] != (height, width):
        raise ValueError(f"image {list(image.shape)} and flow {list(flow.shape)} differ in size")
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    map_x = columns + flow[..., 0]
    map_y = rows + flow[..., 1]
    image = np.asarray(image, dtype=np.float32)
    # remap takes at most four channels at a time.
    channels = image.reshape(height, width, -1)
    warped = [cv2.remap(np.ascontiguousarray(channels[..., start:start + 4]), map_x, map_y, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE).reshape(height, width, -1)
              for start in range(0, channels.shape[-1], 4)]
    return np.concatenate(warped, axis=-1).reshape(image.shape)


def consistency_weights(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Ruder et al.'s weights c for the pixels of frame t: 1 where the previous frame's result may be carried
    over, 0 where frame t's pixel was not visible in frame t-1 or lies on a motion boundary.

    With ŵ = `backward` and w̃(x) = `forward`(x + ŵ(x)) (the forward flow read where the pixel was), a pixel
    is 0 when
      - disoccluded: the flows do not return to the start, |w̃ + ŵ|² > 0.01 (|w̃|² + |ŵ|²) + 0.5;
      - on a motion boundary: |∇ŵ_x|² + |∇ŵ_y|² > 0.01 |ŵ|² + 0.002 (central differences);
      - or it came from outside frame t-1 (x + ŵ(x) off the image), as in the authors' consistencyChecker.
    The released checker also blurs the weights; here they stay the paper's {0, 1}.

    For the long-term weights of frame t-j, pass the flows between frames t-j and t instead of t-1 and t.

    Args:
        forward: float32 [H, W, 2], `optical_flow(frame_t-1, frame_t)`, on frame t-1's grid.
        backward: float32 [H, W, 2], `optical_flow(frame_t, frame_t-1)`, on frame t's grid.

    Returns:
        float32 [H, W] in {0, 1}, on frame t's grid.
    """
    if forward.shape != backward.shape:
        raise ValueError(f"flows of different shapes: {list(forward.shape)} and {list(backward.shape)}")
    height, width = backward.shape[:2]
    rows, columns = np.mgrid[0:height, 0:width]
    source_x = columns + backward[..., 0]
    source_y = rows + backward[..., 1]
    inside = (source_x >= 0) & (source_x <= width - 1) & (source_y >= 0) & (source_y <= height - 1)

    forward_at_source = warp(forward, backward)
    round_trip = np.sum(np.square(forward_at_source + backward), axis=-1)
    motion = np.sum(np.square(backward), axis=-1)
    disoccluded = round_trip > (_ROUND_TRIP_RELATIVE * (np.sum(np.square(forward_at_source), axis=-1) + motion)
                                + _ROUND_TRIP_ABSOLUTE)

    gradient_squared = sum(np.square(derivative) for component in (backward[..., 0], backward[..., 1])
                           for derivative in np.gradient(component))
    motion_boundary = gradient_squared > _BOUNDARY_RELATIVE * motion + _BOUNDARY_ABSOLUTE

    return (inside & ~disoccluded & ~motion_boundary).astype(np.float32)


def long_term_weights(weights_by_offset: Sequence[np.ndarray]) -> list:
    """Ruder et al.'s long-term weights (section 3.3): each earlier frame constrains only the pixels that no
    nearer frame constrains already.

    c_long(t-j, t) = max(c(t-j, t) - Σ_{k in J, k < j} c(t-k, t), 0), for the offsets J (e.g. 1, 2, 4).

    Args:
        weights_by_offset: `consistency_weights` of frame t against frames t-j, float32 [H, W] each, ordered
            from the nearest earlier frame to the farthest (increasing j).

    Returns:
        A list of float32 [H, W], in the same order.
    """
    long_term = []
    nearer = None
    for weights in weights_by_offset:
        weights = np.asarray(weights, dtype=np.float32)
        long_term.append(weights if nearer is None else np.maximum(weights - nearer, 0.0))
        nearer = weights if nearer is None else nearer + weights
    return long_term
