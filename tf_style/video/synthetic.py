"""A camera panning and zooming over a still picture: frames whose motion is known exactly, for testing the
flow estimator and the temporal term against the truth.

From each frame to the next, the picture moves by `shift_per_frame` = (dx, dy) frame pixels and is
magnified by `zoom_per_frame` about the centre of the frame:

    p_t = centre + zoom * (p_t-1 - centre) + shift,

so the backward flow of every frame t > 0 (where each of its pixels was in frame t-1, the convention of
`tf_style.video.flow`) is the same field, `pan_and_zoom_flow`.
"""

from typing import Iterator, Tuple

import numpy as np

from tf_style.video.clips import uint8_frame
from tf_style.video.dependencies import opencv


def pan_and_zoom(image: np.ndarray, num_frames: int, height: int, width: int, shift_per_frame: Tuple[float, float],
                 zoom_per_frame: float) -> Iterator[np.ndarray]:
    """The frames of the camera motion over `image`.

    Frame 0 shows the middle of the picture, scaled so that the frame spans half the picture's width or height
    (whichever leaves the frame covered): room to move before the picture's edge, beyond which it is mirrored.

    Args:
        image: RGB [h, w, 3], uint8 or floats in [0, 255].
        num_frames: how many frames.
        height, width: the frames' size.
        shift_per_frame: (dx, dy), how far the picture moves from one frame to the next, in frame pixels.
        zoom_per_frame: the magnification from one frame to the next (1: none; above 1, zooming in).

    Yields:
        uint8 RGB [height, width, 3].
    """
    cv2 = opencv()
    image = np.asarray(image, dtype=np.float32)
    scale = max(2 * width / image.shape[1], 2 * height / image.shape[0])
    size = (max(width, round(image.shape[1] * scale)), max(height, round(image.shape[0] * scale)))
    # Resampled to the frames' scale once, with area averaging when shrinking, so that the frames do not
    # alias (aliasing would make their motion ambiguous for the estimator under test).
    picture = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)

    to_previous = _frame_to_previous(height, width, shift_per_frame, zoom_per_frame)
    # Frame 0's pixel p shows picture point p + offset: the frame in the middle of the picture.
    frame_to_picture = np.array([[1, 0, (size[0] - width) / 2], [0, 1, (size[1] - height) / 2], [0, 0, 1]])
    for _ in range(num_frames):
        frame = cv2.warpAffine(picture, frame_to_picture[:2].astype(np.float64), (width, height),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT_101)
        yield uint8_frame(frame)
        frame_to_picture = frame_to_picture @ to_previous


def pan_and_zoom_flow(height: int, width: int, shift_per_frame: Tuple[float, float],
                      zoom_per_frame: float) -> np.ndarray:
    """The exact backward flow of every frame t > 0 of `pan_and_zoom` with these arguments.

    Returns:
        float32 [height, width, 2]: (dx, dy) with frame_t[y, x] = frame_t-1[y + dy, x + dx] (up to rounding
        to 8 bits, and where frame t-1 has the point in view).
    """
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float64)
    to_previous = _frame_to_previous(height, width, shift_per_frame, zoom_per_frame)
    previous_x = to_previous[0, 0] * columns + to_previous[0, 1] * rows + to_previous[0, 2]
    previous_y = to_previous[1, 0] * columns + to_previous[1, 1] * rows + to_previous[1, 2]
    return np.stack([previous_x - columns, previous_y - rows], axis=-1).astype(np.float32)


def _frame_to_previous(height: int, width: int, shift_per_frame, zoom_per_frame: float) -> np.ndarray:
    """[3, 3]: a pixel of frame t to where it was in frame t-1, the inverse of the motion."""
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    shift_x, shift_y = shift_per_frame
    # p_t-1 = centre + (p_t - shift - centre) / zoom
    return np.array([[1 / zoom_per_frame, 0, centre_x - (centre_x + shift_x) / zoom_per_frame],
                     [0, 1 / zoom_per_frame, centre_y - (centre_y + shift_y) / zoom_per_frame],
                     [0, 0, 1]])
