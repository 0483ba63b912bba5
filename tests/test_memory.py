"""What fits in memory: the estimate, the refusal of a run that would not fit, and reading what is free."""

import re

import pytest

from tf_style import memory
from tf_style.config import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS
from tf_style.errors import UsageError
from tf_style.network import vgg

LAYERS = DEFAULT_CONTENT_LAYERS + DEFAULT_STYLE_LAYERS
GiB = 1 << 30


# ---------------------------------------------------------------------------------------------------------
# Memory.

def test_the_memory_estimate_grows_with_the_pixels_and_the_layers():
    small = memory.estimate_peak_bytes(384, 512, vgg.VGG16, LAYERS, "float32")
    large = memory.estimate_peak_bytes(768, 1024, vgg.VGG16, LAYERS, "float32")
    assert large - memory.BASE_BYTES == pytest.approx(4 * (small - memory.BASE_BYTES), rel=1e-6)
    assert memory.estimate_peak_bytes(768, 1024, vgg.VGG16, LAYERS, "mixed_bfloat16") < large
    assert memory.estimate_peak_bytes(768, 1024, vgg.VGG16, ("block1_conv1", "block2_conv1"), "float32") < large
    # A style image twice the output's size is seen only forward, at about half the cost per pixel.
    assert memory.estimate_peak_bytes(768, 1024, vgg.VGG16, LAYERS, "float32", [(1536, 2048)]) > large
    assert memory.activations_per_pixel(vgg.VGG16, ("block1_conv1",)) == 64
    assert memory.activations_per_pixel(vgg.VGG16, ("block2_conv1",)) == 64 + 64 + 128 / 4


def test_lbfgs_history_is_counted_at_the_output_size_untiled_and_tiled():
    """16 more float32 RGB images than Adam's state (an iterate, a gradient and 2 x 8 changes, less 2 moments)."""
    extra = 16 * 12 * 768 * 1024
    adam = memory.estimate_peak_bytes(768, 1024, vgg.VGG16, LAYERS, "float32")
    assert memory.estimate_peak_bytes(768, 1024, vgg.VGG16, LAYERS, "float32", optimizer="lbfgs") == adam + extra
    tiled = [memory.estimate_tiled_peak_bytes(768, 1024, 256, 32, vgg.VGG16, LAYERS, DEFAULT_CONTENT_LAYERS, "float32",
                                              optimizer) for optimizer in ("adam", "lbfgs")]
    assert tiled[1] == tiled[0] + extra


def test_a_2048_pixel_result_fits_in_24_gib():
    for dtype in ("float32", "bfloat16"):
        memory.require_fits(1536, 2048, [(1280, 2048)], vgg.VGG16, LAYERS, dtype, available=22 * GiB)


def test_a_size_beyond_memory_is_refused_with_the_estimate_and_a_size_that_fits():
    with pytest.raises(UsageError) as raised:
        memory.require_fits(6000, 8000, [], vgg.VGG16, LAYERS, "float32", available=16 * GiB)
    message = str(raised.value)
    assert re.search(r"8000x6000 result needs about \d+\.\d GB of memory in float32 \(estimated\), but 17\.2 GB "
                     r"are available; use --size=\d+ or less \(or --precision=mixed_bfloat16", message)
    fitting = int(re.search(r"--size=(\d+)", message).group(1))
    height, width = round(fitting * 0.75), fitting
    memory.require_fits(height, width, [], vgg.VGG16, LAYERS, "float32", available=16 * GiB)
    with pytest.raises(UsageError):
        memory.require_fits(height + 8, width + 10, [], vgg.VGG16, LAYERS, "float32", available=16 * GiB)


def test_available_memory_is_read_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24684084 kB\nMemAvailable:   20000000 kB\n")
    assert memory.available_bytes(str(meminfo)) >= 20000000 * 1024
    assert memory.available_bytes(str(tmp_path / "missing")) > GiB  # falls back to the physical memory


# ---------------------------------------------------------------------------------------------------------
# Tiles: a size that fits only in tiles runs in the largest tiles that fit.

def _tile_size(height, width, available, tile_size=0):
    return memory.choose_tile_size(height, width, [], vgg.VGG16, LAYERS, DEFAULT_CONTENT_LAYERS, "float32",
                                   tile_size, 64, available=available)


def test_a_size_that_fits_untiled_is_not_tiled_and_one_that_does_not_gets_the_largest_tiles_that_fit():
    assert _tile_size(384, 512, 8 * GiB) == 0
    untiled = memory.estimate_peak_bytes(3072, 4096, vgg.VGG16, LAYERS, "float32")
    chosen = _tile_size(3072, 4096, untiled // 2)
    assert chosen % 16 == 0 and 64 <= chosen < 4096
    fits = lambda size: memory.estimate_tiled_peak_bytes(  # noqa: E731
        3072, 4096, size, 64, vgg.VGG16, LAYERS, DEFAULT_CONTENT_LAYERS, "float32") <= untiled // 2
    assert fits(chosen) and not fits(chosen + 16)
    # Asked for, tiles are used whether or not the untiled step would fit; not where the image is one tile.
    assert _tile_size(384, 512, 8 * GiB, tile_size=256) == 256
    assert _tile_size(384, 512, 8 * GiB, tile_size=512) == 0
    assert _tile_size(384, 512, None, tile_size=256) == 256


def test_tiles_that_would_not_fit_are_refused_with_what_would():
    with pytest.raises(UsageError, match=r"a 4096x3072 result in tiles of 2048 px needs about \d+\.\d GB of memory in "
                                         r"float32 \(estimated\), but 4\.3 GB are available; use a smaller "
                                         r"--tile_size, or --tile_size=0"):
        _tile_size(3072, 4096, 4 * GiB, tile_size=2048)
    with pytest.raises(UsageError, match=r"a 40000x30000 result needs about \d+\.\d GB .* even in tiles of 64 px, "
                                         r"but 4\.3 GB are available; use --size=\d+ or less"):
        _tile_size(30000, 40000, 4 * GiB)
