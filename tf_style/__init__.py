"""tf_style: neural style transfer (Gatys, Ecker & Bethge, CVPR 2016) in TensorFlow/Keras.

    >>> import tf_style
    >>> result = tf_style.stylize("photo.jpg", "painting.jpg", size=256, steps=200)
    >>> results = tf_style.stylize_batch([("a.jpg", "painting.jpg"), ("b.jpg", "painting.jpg")], size=256)
    >>> done = tf_style.stylize_to_files([("a.jpg", "painting.jpg")], "out")  # run again to resume
    >>> frames = tf_style.stylize_video("clip.mp4", "painting.jpg", "styled.mp4", size=256)  # the video extra

The public names load on first use, so that `python -m tf_style.main` can import TensorFlow itself,
quietly, after its own start-up.
"""

import importlib

__version__ = "0.1.0"

_PUBLIC = {
    "stylize": "tf_style.api",
    "stylize_batch": "tf_style.api",
    "stylize_to_files": "tf_style.api",
    "stylize_video": "tf_style.video.stylize",
    "Stylizer": "tf_style.stylizer",
    "PairResult": "tf_style.stylizer",
    "FileResult": "tf_style.stylizer",
    "StyleConfig": "tf_style.config",
    "StepReport": "tf_style.optimization.level",
    "UsageError": "tf_style.errors",
    "DivergedError": "tf_style.errors",
    "Interrupted": "tf_style.errors",
    "export_feature_extractor": "tf_style.serving.feature_extractor",
}
__all__ = list(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'tf_style' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
