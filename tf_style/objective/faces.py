"""Faces in the photo, and the mask of where they are, for the content term that keeps them (`--face_weight`).

Faces fail first: at a few dozen pixels high, the style's strokes are as large as an eye, and a global content
weight high enough to keep the eyes keeps the whole photo unpainted. So faces get a content term of their own,
normalized by their area (`terms.FaceTerm`): a small face is held as firmly as a large one, and the rest of
the photo is painted as before.

The faces are found with OpenCV's Haar cascade for frontal faces (Viola & Jones), which ships with OpenCV
(4.x; the 5.x wheels left the cascades out) and runs in milliseconds on the CPU. Alone it also finds faces in
facades and brush strokes (measured: a window row of the bundled Tübingen at 640 and 800 px, *The Starry Night*
at 384-640 px), and a false face would come out unpainted; so a face is kept only if the eye cascade finds an eye
in its upper half and, in a colour photo, most of its middle has the chroma of skin (Chai & Ngan's YCrCb range,
which holds across skin tones: it bounds the colour, not the brightness). It misses faces seen from the side and
faces under about 24 pixels on the photo as given; those are painted like the rest. OpenCV is imported on first
use.
"""

import functools

import numpy as np
import tensorflow as tf

# Faces are searched on the photo at most this large (long side, pixels): large enough for a face of a few
# percent of the picture's height, small enough to take milliseconds on a large photo.
DETECTION_LONG_SIDE = 640
# The cascade's settings: the window grows by this factor between passes, and a face needs this many
# overlapping hits. Fewer hits finds more faces and, in textured scenes (foliage, facades), faces that are not.
_SCALE_FACTOR = 1.1
_MIN_NEIGHBORS = 8
# The smallest face searched for, in pixels of the searched image (the cascade's window is 24 px).
_MIN_FACE_SIDE = 24
# The eyes are searched in the face's upper part scaled to this width (an eye there is about 30 px, over the eye
# cascade's 20 px window even for the smallest face), with fewer overlapping hits: the face is already found.
_EYE_SEARCH_WIDTH = 128
_EYE_MIN_NEIGHBORS = 3
# Skin: Cr in 133..173 and Cb in 77..127 (Chai & Ngan 1999), on at least this fraction of the face's middle
# (measured: 1.0 on the astronaut's face at 160 and 512 px, 0.2 on the facade Tübingen shows as a face).
_SKIN_CR = (133, 173)
_SKIN_CB = (77, 127)
_MIN_SKIN_FRACTION = 0.5
# A photo whose chroma stays this close to grey (on 99% of its pixels) is black and white: no skin test.
_GREY_CHROMA = 4.0
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
    pixels = np.clip(image, 0, 255).astype(np.uint8)
    if scale < 1.0:
        pixels = cv2.resize(pixels, (max(1, round(width * scale)), max(1, round(height * scale))),
                            interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    found = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
        grey, scaleFactor=_SCALE_FACTOR, minNeighbors=_MIN_NEIGHBORS, minSize=(_MIN_FACE_SIDE, _MIN_FACE_SIDE))
    if len(found) == 0:  # most photos, and every frame of most videos: no colour conversion for them
        return []
    colour = cv2.cvtColor(pixels, cv2.COLOR_RGB2YCrCb)
    in_colour = np.percentile(np.abs(colour[..., 1:].astype(np.float32) - 128), 99) > _GREY_CHROMA
    kept = [box for box in found if _has_an_eye(grey, box) and (not in_colour or _is_skin(colour, box))]
    boxes = [tuple(round(value / scale) for value in box) for box in kept]
    return sorted(boxes, key=lambda box: box[2] * box[3], reverse=True)


def _has_an_eye(grey: np.ndarray, box) -> bool:
    """Whether the eye cascade finds an eye in the upper 60% of a face's box."""
    import cv2

    x, y, width, height = box
    upper = grey[y:y + height * 6 // 10, x:x + width]
    upper = cv2.resize(upper, (_EYE_SEARCH_WIDTH, max(1, round(_EYE_SEARCH_WIDTH * upper.shape[0] / upper.shape[1]))),
                       interpolation=cv2.INTER_LINEAR)
    return len(_cascade("haarcascade_eye.xml").detectMultiScale(upper, scaleFactor=_SCALE_FACTOR,
                                                                 minNeighbors=_EYE_MIN_NEIGHBORS)) > 0


def _is_skin(colour: np.ndarray, box) -> bool:
    """Whether most of the middle of a face's box (YCrCb) has the chroma of skin."""
    x, y, width, height = box
    middle = colour[y + height // 4:y + 3 * height // 4, x + width // 4:x + 3 * width // 4].reshape(-1, 3)
    skin = ((middle[:, 1] >= _SKIN_CR[0]) & (middle[:, 1] <= _SKIN_CR[1])
            & (middle[:, 2] >= _SKIN_CB[0]) & (middle[:, 2] <= _SKIN_CB[1]))
    return skin.size > 0 and float(skin.mean()) >= _MIN_SKIN_FRACTION


@functools.lru_cache(maxsize=None)
def _cascade(name: str):
    """One of OpenCV's bundled cascades, read once (a batch or a video asks for every image's faces)."""
    import cv2

    return cv2.CascadeClassifier(cv2.data.haarcascades + name)


def face_mask(height, width, boxes) -> tf.Tensor:
    """Where the faces are: float32 [height, width] in [0, 1], 1 inside each face's ellipse, fading to 0 at
    its rim (so the term's pull has no edge for the optimization to draw), 0 elsewhere.

    TensorFlow ops, so that the served graph draws the same mask from the face boxes a request brings.

    Args:
        height, width: the mask's size (ints, or scalar tensors in a graph).
        boxes: faces as `find_faces` gives them, in pixels of a height x width image: [N, 4] (x, y, width,
            height), a list or a tensor; N may be 0.
    """
    boxes = tf.reshape(tf.cast(boxes, tf.float32), [-1, 4])
    rows = tf.cast(tf.range(height), tf.float32)[None, :, None] + 0.5
    columns = tf.cast(tf.range(width), tf.float32)[None, None, :] + 0.5
    x, y, box_width, box_height = (each[:, None, None] for each in tf.unstack(boxes, num=4, axis=1))
    squared_distance = (((columns - (x + box_width / 2)) / (_ELLIPSE_WIDTH * box_width)) ** 2
                        + ((rows - (y + box_height / 2)) / (_ELLIPSE_HEIGHT * box_height)) ** 2)
    fade = tf.clip_by_value((_ZERO_OUTSIDE - squared_distance) / (_ZERO_OUTSIDE - _FULL_INSIDE), 0.0, 1.0)
    return tf.reduce_max(tf.concat([tf.zeros([1, height, width]), fade], axis=0), axis=0)
