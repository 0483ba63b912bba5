"""What video needs beyond TensorFlow: OpenCV (installed with tf_style) and the ffmpeg executable (the `video`
extra), imported when first needed.

Imported lazily so that `import tf_style.video.clips` (the command line does at every start) costs nothing and
needs nothing, and a missing package becomes one line that says how to install it.
"""

import os

from tf_style.errors import UsageError

_INSTALL = "pip install -e '.[video]' (or pip install 'tf_style[video]')"


def opencv():
    """The `cv2` module.

    Raises:
        UsageError: OpenCV is not installed.
    """
    # OpenCV's ffmpeg prints its own complaints about a damaged file ("partial file", ...) to stderr, ahead
    # of the one-line error the reader raises; quiet unless the user asks for them (read when OpenCV first
    # opens a video).
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    try:
        import cv2
    except ImportError as error:
        raise UsageError(f"video needs OpenCV, which tf_style installs, and it is missing ({error}); reinstall "
                         "tf_style with pip install -e . (or pip install tf_style)") from None
    return cv2


def ffmpeg_executable() -> str:
    """The path of the ffmpeg program that imageio-ffmpeg bundles (or the one IMAGEIO_FFMPEG_EXE names).

    Raises:
        UsageError: imageio-ffmpeg is not installed, or has no ffmpeg for this platform.
    """
    try:
        import imageio_ffmpeg
    except ImportError as error:
        raise UsageError(f"video needs the video extra, and imageio-ffmpeg is missing ({error}); install it with "
                         f"{_INSTALL}") from None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as error:  # no bundled binary for this platform and none on the PATH
        raise UsageError(f"video needs an ffmpeg program and imageio-ffmpeg found none ({error}); install ffmpeg "
                         "or set IMAGEIO_FFMPEG_EXE to its path") from None
