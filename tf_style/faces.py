"""Faces in the photo, and the mask of where they are, for the content term that keeps them (`--face_weight`).

Faces fail first: at a few dozen pixels high, the style's strokes are as large as an eye, and a global content
weight high enough to keep the eyes keeps the whole photo unpainted. So faces get a content term of their own,
normalized by their area (`objective.FaceTerm`): a small face is held as firmly as a large one, and the rest of
the photo is painted as before.

The faces are found with OpenCV's Haar cascade for frontal faces (Viola & Jones), which ships with OpenCV
(4.x; the 5.x wheels left the cascades out) and runs in milliseconds on the CPU. It misses faces seen from the
side and faces under about 20 pixels; those are painted like the rest. OpenCV is imported on first use.
"""

import functools

import numpy as np

# Faces are searched on the photo at most this large (long side, pixels): large enough for a face of a few
# percent of the picture's height, small enough to take milliseconds on a large photo.
DETECTION_LONG_SIDE = 640
# The cascade's settings: the window grows by this factor between passes, and a face needs this many
# overlapping hits. Fewer hits finds more faces and, in textured scenes (foliage, facades), faces that are not.
_SCALE_FACTOR = 1.1
_MIN_NEIGHBORS = 6
# The smallest face searched for, in pixels of the searched image (the cascade's window is 24 px).
_MIN_FACE_SIDE = 24
# The cascade's box spans the brows to the mouth. The mask is 1 on an ellipse about the box (its semi-axes
# these fractions of the box's width and height, times sqrt(1/2)) and fades to 0 on one sqrt(3) times as large,
# which takes in the chin, the forehead and the hairline.
_ELLIPSE_WIDTH = 0.7
_ELLIPSE_HEIGHT = 0.85
_FULL_INSIDE = 0.5
_ZERO_OUTSIDE = 1.5


def find_faces(image: np.ndarray) -> list:
    """The frontal faces in an image: [(x, y, width, height), ...] in its pixels, largest first.

    Args:
        image: float32 or uint8 [H, W, 3] RGB in [0, 255].
    """
    import cv2  # on first use: importing OpenCV takes a noticeable part of a second

    height, width = image.shape[:2]
    scale = min(1.0, DETECTION_LONG_SIDE / max(height, width))
    grey = cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        grey = cv2.resize(grey, (max(1, round(width * scale)), max(1, round(height * scale))),
                          interpolation=cv2.INTER_AREA)
    found = _cascade().detectMultiScale(grey, scaleFactor=_SCALE_FACTOR, minNeighbors=_MIN_NEIGHBORS,
                                     minSize=(_MIN_FACE_SIDE, _MIN_FACE_SIDE))
    boxes = [tuple(round(value / scale) for value in box) for box in found]
    return sorted(boxes, key=lambda box: box[2] * box[3], reverse=True)


@functools.lru_cache(maxsize=None)
def _cascade():
    """The frontal-face cascade, read once (a batch or a video asks for every image's faces)."""
    import cv2

    return cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")


def face_mask(height: int, width: int, boxes) -> np.ndarray:
    """Where the faces are: float32 [height, width] in [0, 1], 1 inside each face's ellipse, fading to 0 at
    its rim (so the term's pull has no edge for the optimization to draw), 0 elsewhere.

    Args:
        boxes: faces as `find_faces` gives them, in pixels of a height x width image.
    """
    rows, columns = np.mgrid[:height, :width].astype(np.float32)
    mask = np.zeros((height, width), np.float32)
    for x, y, box_width, box_height in boxes:
        center_x, center_y = x + box_width / 2, y + box_height / 2
        squared_distance = (((columns + 0.5 - center_x) / (_ELLIPSE_WIDTH * box_width)) ** 2
                            + ((rows + 0.5 - center_y) / (_ELLIPSE_HEIGHT * box_height)) ** 2)
        fade = (_ZERO_OUTSIDE - squared_distance) / (_ZERO_OUTSIDE - _FULL_INSIDE)
        mask = np.maximum(mask, np.clip(fade, 0.0, 1.0))
    return mask
