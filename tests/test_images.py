"""Loading every common image mode, refusing bad files with a UsageError, and atomic saving."""

import io
import os
import stat

import numpy as np
import pytest
from PIL import Image

from tf_style import images
from tf_style.errors import UsageError, WriteError


def _save(tmp_path, name, image, **options):
    path = tmp_path / name
    image.save(path, **options)
    return str(path)


def test_rgb_png_round_trip(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    loaded = images.load_image(_save(tmp_path, "a.png", Image.fromarray(pixels)))
    assert loaded.dtype == np.float32 and loaded.shape == (20, 30, 3)
    np.testing.assert_array_equal(loaded, pixels)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "1", "I;16", "LA", "RGBA"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    image = Image.new("RGB", (24, 20), (200, 100, 50)).convert(mode)
    extension = "jpg" if mode == "CMYK" else "png"
    loaded = images.load_image(_save(tmp_path, f"a.{extension}", image))
    assert loaded.shape == (20, 24, 3) and loaded.dtype == np.float32
    assert loaded.min() >= 0 and loaded.max() <= 255


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    values = np.full((20, 20), 32896, dtype=np.uint16)  # 128 * 257
    loaded = images.load_image(_save(tmp_path, "a.png", Image.fromarray(values)))
    np.testing.assert_allclose(loaded, 128.0, atol=0.01)


def test_transparent_pixels_become_white(tmp_path):
    image = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    loaded = images.load_image(_save(tmp_path, "a.png", image))
    np.testing.assert_array_equal(loaded, 255.0)


def test_exif_rotation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = _save(tmp_path, "a.jpg", image, exif=exif.tobytes())
    assert images.load_image(path).shape == (40, 20, 3)


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (20, 20), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = str(tmp_path / "a.gif")
    frames[0].save(path, save_all=True, append_images=frames[1:])
    loaded = images.load_image(path)
    assert loaded[..., 0].mean() > 200 and loaded[..., 2].mean() < 50


@pytest.mark.parametrize("array", [
    np.zeros((20, 20), np.uint8), np.zeros((20, 20, 1), np.float32), np.zeros((20, 20, 4), np.uint8),
])
def test_arrays_are_accepted(array):
    assert images.load_image(array).shape == (20, 20, 3)


def test_pil_images_are_accepted():
    assert images.load_image(Image.new("L", (30, 20))).shape == (20, 30, 3)


def _write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _truncated_jpeg(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    path = tmp_path / "truncated.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return str(path)


def _bad_crc_png(tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[29] ^= 0xFF  # inside the IHDR chunk's CRC
    path = tmp_path / "badcrc.png"
    path.write_bytes(bytes(data))
    return str(path)


@pytest.mark.parametrize("make, message", [
    (lambda tmp: str(tmp / "missing.png"), "does not exist"),
    (lambda tmp: str(tmp), "is a directory"),
    (lambda tmp: _write(tmp / "empty.jpg", b""), "not a readable image"),
    (lambda tmp: _write(tmp / "text.jpg", b"hello, not a picture"), "not a readable image"),
    (_truncated_jpeg, "not a readable image"),
    (_bad_crc_png, "not a readable image"),
])
def test_bad_files_are_usage_errors(tmp_path, make, message):
    with pytest.raises(UsageError, match=message):
        images.load_image(make(tmp_path), "content image")


def test_tiny_image_is_refused(tmp_path):
    with pytest.raises(UsageError, match="1x1 pixels"):
        images.load_image(_save(tmp_path, "tiny.png", Image.new("RGB", (1, 1))))


def test_huge_header_is_refused_before_decoding(tmp_path):
    path = _save(tmp_path, "big.png", Image.new("L", (400, 300)))
    with pytest.raises(UsageError, match="400x300 pixels, more than the limit"):
        images.load_image(path, max_pixels=100_000)


def test_bytes_load_as_the_file_does(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = _save(tmp_path, "exif.jpg", Image.new("RGB", (40, 20), (200, 10, 10)), exif=exif.tobytes())
    with open(path, "rb") as file:
        from_bytes = images.load_image_bytes(file.read(), "gs://bucket/exif.jpg", "content image")
    np.testing.assert_array_equal(from_bytes, images.load_image(path))
    assert from_bytes.shape == (40, 20, 3)


@pytest.mark.parametrize("data, message", [
    (b"hello, not a picture", "content image gs://b/x.jpg is not a readable image"),
    (b"", "not a readable image"),
])
def test_bad_bytes_are_usage_errors_that_name_the_source(data, message):
    with pytest.raises(UsageError, match=message) as raised:
        images.load_image_bytes(data, "gs://b/x.jpg", "content image")
    assert "BytesIO" not in str(raised.value)


def test_huge_header_in_bytes_is_refused_before_decoding():
    encoded = io.BytesIO()
    Image.new("L", (400, 300)).save(encoded, format="PNG")
    with pytest.raises(UsageError, match="400x300 pixels, more than the limit"):
        images.load_image_bytes(encoded.getvalue(), "big.png", max_pixels=100_000)
    with pytest.raises(UsageError, match="1x1 pixels"):
        tiny = io.BytesIO()
        Image.new("RGB", (1, 1)).save(tiny, format="PNG")
        images.load_image_bytes(tiny.getvalue(), "tiny.png")


def test_encode_image_gives_the_bytes_save_image_writes(tmp_path):
    image = np.random.default_rng(0).uniform(0, 255, (10, 12, 3)).astype(np.float32)
    for name in ("result.png", "result.jpg"):
        images.save_image(str(tmp_path / name), image)
        assert images.encode_image(image, name) == (tmp_path / name).read_bytes()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_unreadable_file_is_a_usage_error(tmp_path):
    path = _save(tmp_path, "a.png", Image.new("RGB", (20, 20)))
    os.chmod(path, 0)
    with pytest.raises(UsageError, match="permission denied"):
        images.load_image(path)


def test_resize_long_side_keeps_aspect_ratio():
    image = np.zeros((300, 200, 3), np.float32)
    assert images.resize_long_side(image, 150).shape == (150, 100, 3)


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = str(tmp_path / "out" / "result.png")
    images.save_image(path, np.full((10, 12, 3), 77.4, np.float32))
    np.testing.assert_array_equal(np.asarray(Image.open(path)), 77)
    assert os.listdir(tmp_path / "out") == ["result.png"]


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = str(tmp_path / "result.png")
    images.save_image(path, np.zeros((10, 10, 3), np.float32))
    before = open(path, "rb").read()

    def broken_save(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(WriteError, match=f"cannot write {path}: disk full"):
        images.save_image(path, np.full((10, 10, 3), 255, np.float32))
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["result.png"]


def test_jpeg_output_by_extension(tmp_path):
    path = str(tmp_path / "result.jpg")
    images.save_image(path, np.zeros((10, 10, 3), np.float32))
    assert Image.open(path).format == "JPEG"


@pytest.mark.parametrize("name, message", [("result.xyz", "unknown image extension"), ("result", "unknown")])
def test_check_output_path_rejects_unknown_extensions(tmp_path, name, message):
    with pytest.raises(UsageError, match=message):
        images.check_output_path(str(tmp_path / name))


def test_check_output_path_creates_directories(tmp_path):
    images.check_output_path(str(tmp_path / "a" / "b" / "result.png"))
    assert (tmp_path / "a" / "b").is_dir()
    assert os.listdir(tmp_path / "a" / "b") == []


def test_check_output_path_rejects_a_file_in_the_way(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="cannot write output"):
        images.check_output_path(str(tmp_path / "file" / "result.png"))


def test_check_output_path_rejects_a_read_only_directory(tmp_path):
    directory = tmp_path / "readonly"
    directory.mkdir()
    os.chmod(directory, stat.S_IRUSR | stat.S_IXUSR)
    if os.access(directory, os.W_OK):
        pytest.skip("this user can write to read-only directories (root)")
    with pytest.raises(UsageError, match="cannot write output"):
        images.check_output_path(str(directory / "result.png"))


def test_contact_sheet_puts_panels_side_by_side_at_one_height():
    red = np.zeros((10, 20, 3), np.float32)
    red[..., 0] = 255
    blue = np.zeros((20, 20, 3), np.float32)
    blue[..., 2] = 255
    sheet = images.contact_sheet([red, blue], height=10, gap=2)
    assert sheet.shape == (10, 20 + 2 + 10, 3)
    np.testing.assert_allclose(sheet[:, :20], red, atol=1)
    np.testing.assert_array_equal(sheet[:, 20:22], 255.0)
    np.testing.assert_allclose(sheet[:, 22:, 2], 255.0, atol=1)


def test_saved_files_get_the_umasks_permissions_not_private_ones(tmp_path):
    previous = os.umask(0o022)
    try:
        path = tmp_path / "result.png"
        images.save_image(str(path), np.zeros((10, 10, 3), np.float32))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


# ---------------------------------------------------------------------------------------------------------
# Images.

def test_a_decompression_bomb_is_refused_from_its_header(tmp_path):
    from bad_inputs import png_header_claiming
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_claiming(100000, 100000))
    assert path.stat().st_size < 100
    with pytest.raises(UsageError, match="claims 10,000,000,000 pixels, more than the limit of 120,000,000"):
        images.load_image(str(path), "content image")
    path.write_bytes(png_header_claiming(12000, 11000))  # under Pillow's own limit, over ours
    with pytest.raises(UsageError, match="claims 12000x11000 pixels, more than the limit"):
        images.image_file_size(str(path), "content image")


def test_image_file_size_reads_the_header_and_applies_exif_rotation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (64, 32)).save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    assert images.image_file_size(str(tmp_path / "rotated.jpg")) == (64, 32)
    assert images.load_image(str(tmp_path / "rotated.jpg")).shape[:2] == (64, 32)


def test_a_crash_outside_pillows_reading_is_not_called_an_unreadable_image(tmp_path, monkeypatch):
    path = _save(tmp_path, "ok.png", Image.new("RGB", (20, 20)))

    def out_of_memory(image):
        raise MemoryError

    monkeypatch.setattr(images, "_rgb_array", out_of_memory)
    with pytest.raises(MemoryError):
        images.load_image(path)
    monkeypatch.setattr(images, "_decoded", out_of_memory)
    with pytest.raises(MemoryError):
        images.load_image(path)
