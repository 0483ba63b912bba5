"""How temporally consistent a stylized video is: the warping error of Lai et al., "Learning Blind Video
Temporal Consistency" (ECCV 2018), section 5.

For consecutive output frames O_t-1 and O_t, with the backward flow of the *input* frames and the
consistency weights M of frame t (pixels visible in both frames, away from motion boundaries),

    E_pair = Σ_pixels M ||O_t - warp(O_t-1, flow)||² / (3 Σ_pixels M),    pixels scaled to [0, 1],

the mean squared difference over the trusted pixels and the three channels, and E_warp is the mean of E_pair
over the pairs. A stylization that moves with the scene scores near 0; one that flickers or swims, more.
(Lai et al. warp frame t+1 onto frame t with the forward flow; the backward warp here is the same measure
read on the other frame's grid, and the one the temporal loss uses.)
"""

import math

import numpy as np

from tf_style.video.flow import warp


def warping_error(previous_output: np.ndarray, output: np.ndarray, backward_flow: np.ndarray,
                  weights: np.ndarray) -> float:
    """E_pair for one pair of consecutive output frames.

    Args:
        previous_output, output: RGB [H, W, 3] of frames t-1 and t, uint8 or floats in [0, 255].
        backward_flow: float32 [H, W, 2], `optical_flow(input_t, input_t-1)` of the input frames.
        weights: float32 [H, W], `consistency_weights` of the input frames for frame t.

    Returns:
        The weighted mean squared difference, pixels in [0, 1]; 0 when no weight is set (as Lai et al.'s
        evaluation counts a fully occluded pair).
    """
    previous_output = np.asarray(previous_output, dtype=np.float32) / 255.0
    output = np.asarray(output, dtype=np.float32) / 255.0
    total_weight = float(np.sum(weights)) * output.shape[-1]
    if total_weight == 0:
        return 0.0
    squared = np.square(output - warp(previous_output, backward_flow))
    return float(np.sum(weights[..., None] * squared) / total_weight)


class WarpingError:
    """E_warp accumulated frame by frame, for a benchmark that streams a video.

        error = WarpingError()
        for each frame t > 0:
            error.add(output_t-1, output_t, backward_flow_t, weights_t)
        error.value

    Attributes:
        num_pairs: the pairs added so far.
    """

    def __init__(self):
        self.num_pairs = 0
        self._sum = 0.0

    def add(self, previous_output: np.ndarray, output: np.ndarray, backward_flow: np.ndarray,
            weights: np.ndarray) -> float:
        """Adds one pair (arguments as `warping_error`) and returns its E_pair."""
        pair_error = warping_error(previous_output, output, backward_flow, weights)
        self._sum += pair_error
        self.num_pairs += 1
        return pair_error

    @property
    def value(self) -> float:
        """The mean E_pair over the pairs added; NaN before the first."""
        return self._sum / self.num_pairs if self.num_pairs else math.nan
