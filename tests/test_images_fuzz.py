"""Property: `images.load_image` turns any bytes into a valid image or a UsageError, never anything else.

The bytes are random, or valid PNG, JPEG and GIF files with bits flipped, bytes cut off, inserted or
overwritten. Decoders meet such files in the wild (a half-downloaded photo, a disk error); a crash, a hang
or a NaN image there would be a bug.
"""

import os
import tempfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bad_inputs import gif_bytes, jpeg_bytes, png_bytes
from tf_style import images
from tf_style.errors import UsageError

VALID_FILES = [png_bytes(24, 32), jpeg_bytes(24, 32), gif_bytes(24, 24)]

# Small, so that a mutated header claiming a large image is refused quickly instead of decoded slowly.
MAX_PIXELS = 1_000_000


@st.composite
def mutated_files(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID_FILES)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "overwrite"]))
        position = draw(st.integers(0, len(data)))
        if kind == "flip" and position < len(data):
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        else:
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[position:position + len(chunk)] = chunk
    return bytes(data)


def _check_load(data: bytes, directory: str) -> None:
    path = os.path.join(directory, "input.img")
    with open(path, "wb") as file:
        file.write(data)
    try:
        image = images.load_image(path, "content image", max_pixels=MAX_PIXELS)
    except UsageError as error:
        assert "\n" not in str(error)
        return
    assert isinstance(image, np.ndarray) and image.dtype == np.float32
    assert image.ndim == 3 and image.shape[2] == 3 and min(image.shape[:2]) >= images.MIN_INPUT_SIDE
    assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 255.0


_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(data=mutated_files())
def test_mutated_files_load_or_raise_usage_error(data):
    with tempfile.TemporaryDirectory() as directory:
        _check_load(data, directory)


@_SETTINGS
@given(data=st.one_of(st.binary(max_size=256),
                      st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a"]).flatmap(
                          lambda magic: st.binary(max_size=256).map(lambda rest: magic + rest))))
def test_random_bytes_load_or_raise_usage_error(data):
    with tempfile.TemporaryDirectory() as directory:
        _check_load(data, directory)


def test_the_valid_files_load():
    with tempfile.TemporaryDirectory() as directory:
        for data in VALID_FILES:
            path = os.path.join(directory, "valid.img")
            with open(path, "wb") as file:
                file.write(data)
            assert images.load_image(path).shape[2] == 3
