"""What fits in memory: the estimate, the refusal of a run that would not fit, and reading what is free."""

import re

import pytest

from tf_style import memory
from tf_style.config import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS
from tf_style.errors import UsageError

LAYERS = DEFAULT_CONTENT_LAYERS + DEFAULT_STYLE_LAYERS
GiB = 1 << 30


# ---------------------------------------------------------------------------------------------------------
# Memory.

def test_the_memory_estimate_grows_with_the_pixels_and_the_layers():
    small = memory.estimate_peak_bytes(384, 512, LAYERS, "float32")
    large = memory.estimate_peak_bytes(768, 1024, LAYERS, "float32")
    assert large - memory.BASE_BYTES == pytest.approx(4 * (small - memory.BASE_BYTES), rel=1e-6)
    assert memory.estimate_peak_bytes(768, 1024, LAYERS, "mixed_bfloat16") < large
    assert memory.estimate_peak_bytes(768, 1024, ("block1_conv1", "block2_conv1"), "float32") < large
    # A style image twice the output's size is seen only forward, at about half the cost per pixel.
    assert memory.estimate_peak_bytes(768, 1024, LAYERS, "float32", [(1536, 2048)]) > large
    assert memory.activations_per_pixel(("block1_conv1",)) == 64
    assert memory.activations_per_pixel(("block2_conv1",)) == 64 + 64 + 128 / 4


def test_a_2048_pixel_result_fits_in_24_gib():
    for dtype in ("float32", "bfloat16"):
        memory.require_fits(1536, 2048, [(1280, 2048)], LAYERS, dtype, available=22 * GiB)


def test_a_size_beyond_memory_is_refused_with_the_estimate_and_a_size_that_fits():
    with pytest.raises(UsageError) as raised:
        memory.require_fits(6000, 8000, [], LAYERS, "float32", available=16 * GiB)
    message = str(raised.value)
    assert re.search(r"8000x6000 result needs about \d+\.\d GB of memory in float32 \(estimated\), but 17\.2 GB "
                     r"are available; use --size=\d+ or less \(or --precision=mixed_bfloat16", message)
    fitting = int(re.search(r"--size=(\d+)", message).group(1))
    height, width = round(fitting * 0.75), fitting
    memory.require_fits(height, width, [], LAYERS, "float32", available=16 * GiB)
    with pytest.raises(UsageError):
        memory.require_fits(height + 8, width + 10, [], LAYERS, "float32", available=16 * GiB)


def test_available_memory_is_read_from_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24684084 kB\nMemAvailable:   20000000 kB\n")
    assert memory.available_bytes(str(meminfo)) >= 20000000 * 1024
    assert memory.available_bytes(str(tmp_path / "missing")) > GiB  # falls back to the physical memory
