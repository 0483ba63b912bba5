"""Images in and out: Pillow <-> numpy float32 RGB [H, W, 3] in [0, 255].

Everything the tool reads or writes as a picture passes through here, so that every caller gets the same
handling of modes, EXIF rotation, size limits and atomic writes.
"""

import io
import os
import re
import warnings
from typing import Callable, TypeVar

import numpy as np
from PIL import Image, ImageOps

from tf_style.errors import UsageError
from tf_style.files import require_writable_directory, write_atomically
from tf_style.network.vgg import MIN_INPUT_SIDE
from tf_style.sizes import ints, scaled_size

T = TypeVar("T")

# Refuse images whose header claims more pixels than this before decoding them: a 20 000 x 6 000 panorama
# still loads, a decompression bomb (a few KB claiming gigapixels) does not reach the decoder.
MAX_INPUT_PIXELS = 120_000_000


OUTPUT_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
                  ".tif": "TIFF", ".tiff": "TIFF"}

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")

_EXIF_ORIENTATION = 0x0112


def load_image(source, what: str = "image", max_pixels: int = MAX_INPUT_PIXELS) -> np.ndarray:
    """Reads an image from a path, a PIL image or an array.

    Args:
        source: a file path, a `PIL.Image.Image`, or an array [H, W], [H, W, 1], [H, W, 3] or [H, W, 4]
            (uint8, or floats in [0, 255]).
        what: what the image is for ("content image", ...), used in error messages.
        max_pixels: refuse a file whose header claims more pixels than this, before decoding it.

    Returns:
        float32 RGB [H, W, 3] in [0, 255]; transparent areas composited on white, EXIF rotation applied.

    Raises:
        UsageError: missing, unreadable, corrupt, non-image, too large or too small input.
    """
    where = f" {os.fspath(source)}" if isinstance(source, (str, os.PathLike)) else ""
    return _require_min_side(_any_to_rgb(source, what, max_pixels), what + where)


def load_mask(source, what: str = "mask") -> np.ndarray:
    """Reads a region mask, in any form `load_image` takes and of any size: float32 [H, W] in [0, 1].

    White is 1, black 0; a colour counts as the mean of its red, green and blue. An array whose values all lie
    in [0, 1] (booleans too) is a mask of 0..1, not a nearly black image of 0..255.

    Raises:
        UsageError: as `load_image`, but for the size.
    """
    if isinstance(source, np.ndarray) and source.size and (source.dtype == bool
                                                           or np.issubdtype(source.dtype, np.number)):
        values = source.astype(np.float32)
        if values.min() >= 0 and values.max() <= 1:
            source = values * 255.0
    return np.mean(_any_to_rgb(source, what, MAX_INPUT_PIXELS), axis=-1) / 255.0


def _any_to_rgb(source, what: str, max_pixels: int) -> np.ndarray:
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, what)
    if isinstance(source, Image.Image):
        return _pil_to_rgb(source)
    if isinstance(source, (str, os.PathLike)):
        return _read_file(os.fspath(source), what, max_pixels)
    raise UsageError(f"{what}: expected a file path, a PIL image or a numpy array, got {type(source).__name__}")


def load_image_bytes(data: bytes, name: str, what: str = "image", max_pixels: int = MAX_INPUT_PIXELS) -> np.ndarray:
    """Reads an image from the bytes of its file, as `load_image` reads the file itself.

    For files read through another filesystem (Beam's `FileSystems`: gs://, s3://): the same pixel limit,
    checked on the header before decoding, and the same modes, EXIF rotation and errors.

    Args:
        data: the encoded file (PNG, JPEG, ...).
        name: where the bytes came from, for error messages.
        what, max_pixels: as for `load_image`.

    Raises:
        UsageError: corrupt, non-image, too large or too small input.
    """
    decoded = _read_with_pillow(io.BytesIO(data), name, what, max_pixels, _decoded)
    return _require_min_side(_rgb_array(decoded), f"{what} {name}")


def _require_min_side(image: np.ndarray, description: str) -> np.ndarray:
    height, width = image.shape[:2]
    if min(height, width) < MIN_INPUT_SIDE:
        raise UsageError(f"{description} is {width}x{height} pixels; the network needs at least {MIN_INPUT_SIDE} "
                         "pixels on each side: use a larger image")
    return image


def _read_file(path: str, what: str, max_pixels: int) -> np.ndarray:
    return _rgb_array(_read_image_file(path, what, max_pixels, _decoded))


def image_file_size(path: str, what: str = "image", max_pixels: int = MAX_INPUT_PIXELS) -> tuple:
    """(height, width) of an image file as displayed (EXIF rotation applied), from its header only.

    Raises:
        UsageError: as `load_image`, for the faults a header shows.
    """
    return _read_image_file(path, what, max_pixels, _displayed_size)


def _displayed_size(image: Image.Image) -> tuple:
    """(height, width) as displayed: EXIF orientations 5 to 8 turn the picture by a quarter."""
    width, height = image.size
    if image.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
        width, height = height, width
    return height, width


def _read_image_file(path: str, what: str, max_pixels: int, read: Callable[[Image.Image], T]) -> T:
    """`_read_with_pillow` on a file, refusing first a directory or a missing file."""
    if os.path.isdir(path):
        raise UsageError(f"{what} {path} is a directory; give the path of an image file")
    if not os.path.exists(path):
        raise UsageError(f"{what} {path} does not exist; check the path")
    return _read_with_pillow(path, path, what, max_pixels, read)


def _read_with_pillow(file, name: str, what: str, max_pixels: int, read: Callable[[Image.Image], T]) -> T:
    """`read(Image.open(file))` (a path or a binary file object), the pixel limit checked before decoding.

    `read` is Pillow's work on the file (the header, the decoding, the mode conversions): any exception it
    raises means the file is not a readable image (Pillow signals bad bytes with many exception types) and
    becomes a UsageError that names `name`. Running out of memory stays a MemoryError.
    """

    def too_large(claim: str) -> UsageError:
        return UsageError(f"{what} {name} claims {claim} pixels, more than the limit of {max_pixels:,} (a "
                          "decompression bomb, or a huge image); downscale it first")

    try:
        with warnings.catch_warnings():
            # We apply our own pixel limit below, before decoding; Pillow's warning would only add noise,
            # and so would its warnings about odd but readable metadata.
            warnings.simplefilter("ignore")
            with Image.open(file) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise too_large(f"{width}x{height}")
                return read(image)
    except (UsageError, MemoryError):
        raise
    except Image.DecompressionBombError as error:
        # Pillow refuses, in `Image.open`, headers beyond twice its own limit, before ours is checked; its
        # message gives the number of pixels but not the width and height.
        claimed = re.search(r"\((\d+) pixels\)", str(error))
        raise too_large(f"{int(claimed.group(1)):,}" if claimed else "too many") from None
    except PermissionError:
        raise UsageError(f"{what} {name} cannot be read (permission denied); check its permissions") from None
    except Exception as error:  # Pillow signals bad bytes with many exception types; all mean "not readable".
        # Pillow names the file by its repr; the message names it already, and a BytesIO's repr is noise.
        description = _describe(error).replace(f" {file!r}", "")
        raise UsageError(f"{what} {name} is not a readable image ({description}); "
                         "give a PNG, JPEG or other image file Pillow can open") from None


def _describe(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    """A Pillow image of any mode as float32 RGB [H, W, 3] in [0, 255]."""
    return _rgb_array(_decoded(image))


def _decoded(image: Image.Image) -> Image.Image:
    """Pillow's part of reading an image: decoded, turned upright (EXIF), transparency on white, in "RGB" or
    in one of the modes `_rgb_array` scales itself (16-bit grayscale, float)."""
    image.load()
    image = ImageOps.exif_transpose(image)
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "F":
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def _rgb_array(image: Image.Image) -> np.ndarray:
    """A `_decoded` image as float32 RGB [H, W, 3] in [0, 255]."""
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float32)
        # 16-bit grayscale comes as 0..65535; scale it to 0..255 rather than clipping it to white.
        if values.max(initial=0) > 255:
            values = values / 257.0
        return np.repeat(np.clip(values, 0, 255)[..., None], 3, axis=-1)
    if image.mode == "F":
        # Floating-point TIFFs may hold NaN or infinities; no pixel may leave [0, 255].
        values = np.clip(np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=255.0), 0, 255)
        return np.repeat(values[..., None], 3, axis=-1)
    return np.asarray(image, dtype=np.float32)


def _array_to_rgb(array: np.ndarray, what: str) -> np.ndarray:
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise UsageError(f"{what}: expected an array of shape [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], "
                         f"got {list(array.shape)}")
    if not np.issubdtype(array.dtype, np.number):
        raise UsageError(f"{what}: expected a numeric array, got dtype {array.dtype}")
    values = array.astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise UsageError(f"{what}: the array holds NaN or infinite values")
    if values.shape[-1] == 4:
        alpha = values[..., 3:] / 255.0
        values = values[..., :3] * alpha + 255.0 * (1.0 - alpha)
    if values.shape[-1] == 1:
        values = np.repeat(values, 3, axis=-1)
    return np.clip(values, 0.0, 255.0)


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Lanczos resize of a float32 [H, W, 3] image, channel by channel, without rounding to 8 bits."""
    if image.shape[:2] == (height, width):
        return image
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c])).resize((width, height), Image.LANCZOS))
        for c in range(image.shape[-1])
    ]
    return np.clip(np.stack(channels, axis=-1), 0.0, 255.0).astype(np.float32)


def resize_long_side(image: np.ndarray, long_side: int) -> np.ndarray:
    """Resize so that the longer side is `long_side` pixels."""
    return resize(image, *ints(scaled_size(image.shape[0], image.shape[1], long_side)))


def output_format(path: str) -> str:
    """The Pillow format for an output path, from its extension."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in OUTPUT_FORMATS:
        raise UsageError(f"output {path}: unknown image extension {extension or '(none)'!r}; use one of "
                         f"{', '.join(sorted(OUTPUT_FORMATS))}")
    return OUTPUT_FORMATS[extension]


def check_output_path(path: str) -> None:
    """Checks, before any work, that an image can be written at `path`; creates missing directories.

    Raises:
        UsageError: unknown extension, a directory in the way, or a directory that cannot be written.
    """
    if os.path.isdir(path):
        raise UsageError(f"output {path} is a directory; give a file name such as {os.path.join(path, 'result.png')}")
    output_format(path)
    require_writable_directory(os.path.dirname(os.path.abspath(path)), f"output {path}", "--output")


def save_image(path: str, image: np.ndarray) -> None:
    """Writes float32 [H, W, 3] in [0, 255] to `path` atomically: a temporary file, then a rename.

    A reader (or a crash) sees either the previous file or the complete new one, never half an image.
    """
    image_format = output_format(path)
    write_atomically(path, lambda file: _write_encoded(file, image, image_format))


def encode_image(image: np.ndarray, path: str) -> bytes:
    """The bytes `save_image(path, image)` would write: float32 [H, W, 3] in [0, 255], in `path`'s format.

    For writers that are not local files (Beam's `FileSystems`), which do their own atomic write.
    """
    encoded = io.BytesIO()
    _write_encoded(encoded, image, output_format(path))
    return encoded.getvalue()


def _write_encoded(file, image: np.ndarray, image_format: str) -> None:
    pixels = np.clip(np.rint(np.asarray(image, dtype=np.float32)), 0, 255).astype(np.uint8)
    options = {"quality": 95} if image_format in ("JPEG", "WEBP") else {}
    Image.fromarray(pixels, "RGB").save(file, format=image_format, **options)


def contact_sheet(panels, height: int, gap: int = 8) -> np.ndarray:
    """Images side by side at one height, on white, for showing a run: content | style(s) | result.

    Args:
        panels: float32 [h, w, 3] images in [0, 255], any sizes.
        height: the height every panel is resized to.
        gap: white pixels between panels.

    Returns:
        float32 [height, total width, 3].
    """
    resized = [resize(panel, height, max(1, round(panel.shape[1] * height / panel.shape[0]))) for panel in panels]
    width = sum(panel.shape[1] for panel in resized) + gap * (len(resized) - 1)
    sheet = np.full((height, width, 3), 255.0, np.float32)
    left = 0
    for panel in resized:
        sheet[:, left:left + panel.shape[1]] = panel
        left += panel.shape[1] + gap
    return sheet
