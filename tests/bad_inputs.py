"""Bad and odd input images, made from scratch, and what the command line does with each.

`tests/test_cli.py` runs the CLI on every one of them; the "Bad inputs" table of docs/robustness.md states the
same outcomes. `python tests/bad_inputs.py` runs the CLI on each and prints the table's rows with the real
messages, to paste into docs/robustness.md when an outcome changes.
"""

import io
import os
import struct
import tempfile
import zlib

import numpy as np
from PIL import Image

from programs import in_subprocess


def _pixels(height: int = 48, width: int = 64) -> np.ndarray:
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows * 255 // height, cols * 255 // width, (rows + cols) % 256], -1).astype(np.uint8)


def png_bytes(height: int = 48, width: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_pixels(height, width)).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_bytes(height: int = 48, width: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_pixels(height, width)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def gif_bytes(height: int = 32, width: int = 32) -> bytes:
    """An animated GIF: a red frame, then a blue one."""
    buffer = io.BytesIO()
    frames = [Image.new("RGB", (width, height), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header (IHDR) claims width x height 8-bit RGB pixels, with one empty IDAT chunk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
            + chunk(b"IEND", b""))


def _write(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    with open(path, "wb") as file:
        file.write(data)
    return path


def _save(directory: str, name: str, image: Image.Image, **options) -> str:
    path = os.path.join(directory, name)
    image.save(path, **options)
    return path


def _bad_crc_png(directory: str, chunk: bytes) -> str:
    """A PNG with the last byte of the CRC of its first `chunk` (b"IHDR", b"IDAT") flipped."""
    data = bytearray(png_bytes())
    start = data.index(chunk)
    length = struct.unpack(">I", data[start - 4:start])[0]
    data[start + 4 + length + 3] ^= 0xFF
    return _write(directory, f"bad_crc_{chunk.decode().lower()}.png", bytes(data))


def _exif_rotated_jpeg(directory: str) -> str:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": stored 64x32, shown 32x64
    return _save(directory, "exif_rotated.jpg", Image.fromarray(_pixels(32, 64)), exif=exif.tobytes())


def _sixteen_bit_png(directory: str) -> str:
    values = (np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)
    return _save(directory, "sixteen_bit.png", Image.fromarray(values))


def _alpha_png(directory: str) -> str:
    rgba = np.concatenate([_pixels(), np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))[..., None]], -1)
    return _save(directory, "alpha.png", Image.fromarray(rgba, "RGBA"))


# name: (make(directory) -> path, what the CLI does: exit status and a part of its message).
# Files that fail stop the run with status 2 and one line; the others are stylized (status 0).
REFUSED = {
    "empty file": (lambda d: _write(d, "empty.jpg", b""), "not a readable image (UnidentifiedImageError"),
    "text file named .jpg": (lambda d: _write(d, "text.jpg", b"just some text, not a picture\n"),
                             "not a readable image (UnidentifiedImageError"),
    "truncated JPEG": (lambda d: _write(d, "truncated.jpg", jpeg_bytes()[: len(jpeg_bytes()) // 2]),
                       "not a readable image (OSError: Truncated File Read)"),
    "PNG with a bad CRC in its header (IHDR)": (lambda d: _bad_crc_png(d, b"IHDR"),
                                                "not a readable image (UnidentifiedImageError"),
    "1x1 image": (lambda d: _save(d, "one_pixel.png", Image.new("RGB", (1, 1))),
                  "is 1x1 pixels; the network needs at least 16 pixels on each side"),
    "directory with --output (a directory is a batch run)": (
        lambda d: os.path.join(d, ""), "--output names one result; a batch run writes"),
    "huge header (a 65-byte PNG claiming 100000x100000 pixels)": (
        lambda d: _write(d, "huge.png", png_header_claiming(100000, 100000)),
        "claims 10,000,000,000 pixels, more than the limit of 120,000,000"),
}

ACCEPTED = {
    "PNG with a bad CRC in its pixel data (IDAT)": (lambda d: _bad_crc_png(d, b"IDAT"),
                                                    "decoded as it is: Pillow checks the CRCs of header chunks only"),
    "alpha channel (RGBA PNG)": (_alpha_png, "transparent pixels composited on white"),
    "16-bit PNG": (_sixteen_bit_png, "0..65535 scaled to 0..255"),
    "CMYK JPEG": (lambda d: _save(d, "cmyk.jpg", Image.fromarray(_pixels()).convert("CMYK")),
                  "converted to RGB"),
    "EXIF-rotated photo": (_exif_rotated_jpeg, "turned upright: a 64x32 file with orientation 6 gives a 32x64 "
                                               "result"),
    "animated GIF": (lambda d: _save(d, "animated.gif", Image.open(io.BytesIO(gif_bytes())), save_all=True),
                     "its first frame"),
}


def existing_output(directory) -> str:
    """An image file at <directory>/existing.png, for the tests that check it is left alone."""
    path = os.path.join(directory, "existing.png")
    Image.fromarray(np.full((20, 20, 3), 7, np.uint8)).save(path)
    return path


def _print_table() -> None:
    with tempfile.TemporaryDirectory() as directory:
        style = _write(directory, "style.png", png_bytes(64, 64))
        print("| input | what happens |\n| --- | --- |")
        for name, (make, _) in REFUSED.items():
            result = in_subprocess("tf_style.main", f"--content={make(directory)}", f"--style={style}", "--size=64",
                                   "--steps=1", f"--output={os.path.join(directory, 'out.png')}")
            message = result.stderr.strip().replace(directory + os.sep, "").replace(directory, "DIR")
            print(f"| {name} | exit {result.returncode}: `{message}` |")
        for name, (make, behaviour) in ACCEPTED.items():
            output = os.path.join(directory, "out.png")
            result = in_subprocess("tf_style.main", f"--content={make(directory)}", f"--style={style}", "--size=64",
                                   "--steps=1", f"--output={output}")
            size = Image.open(output).size if result.returncode == 0 else None
            print(f"| {name} | exit {result.returncode}: stylized ({behaviour}); result {size} |")


if __name__ == "__main__":
    _print_table()
