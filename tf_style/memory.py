"""How much memory a stylization needs, and a refusal up front when the machine does not have it.

Without this check a `--size` too large for the machine runs until the kernel's OOM killer ends the process,
with no message and no output. The estimate is a model of the peak resident memory of the process:

    peak = BASE + pixels x (VGG16 activations per input pixel, up to the deepest layer in use) x bytes

where `bytes` (per activation, forward and backward together) depends on the compute dtype. Calibrated on this
project's 2-core, 24 GiB AVX-512-BF16 CPU machine (TensorFlow 2.21, oneDNN; replicate padding on every
convolution; avg pooling, as the default was then: max pooling, the default since, has activations of the same
sizes, and was not measured again) by running `tf_style.stylize` (a 768x576 content image, a 768x480 style
image, default layers, one scale, 3 steps; 2 at 2048) in a fresh process for each size and precision, and reading
`resource.getrusage(RUSAGE_SELF).ru_maxrss` at the end. Measured peaks, and this model's estimates (never
below, at most 8% above):

    long side   pixels      mixed_bfloat16 (estimate)   float32 (estimate)
    512         196,608     1.28 GB (1.32)              1.49 GB (1.56)
    1024        786,432     2.58 GB (2.59)              3.51 GB (3.54)
    2048        3,145,728   7.33 GB (7.68)              10.64 GB (11.44)

A coarse-to-fine run peaks at its last scale, once the previous scales' tensors are freed (1024 px from
512: 2.49 GB in mixed_bfloat16).

The style images go through the network forward only, before the train step; measured at 512 with
`style_scale=2` (a 1024x640 style image), they add what half their pixels would add to the train step. They
count only when that is more than the output's pixels.
"""

import os
from typing import Optional, Sequence

from tf_style.errors import UsageError
from tf_style.network import vgg
from tf_style.optimization.core import LBFGS

# Resident memory of the process with TensorFlow loaded and VGG16 built, before any image-sized tensor.
BASE_BYTES = 900_000_000

# Peak bytes per VGG16 activation value of the train step (forward activations kept for the gradient, the
# gradients, oneDNN's reorder buffers, the allocator's slack), fitted to the table above; float16 (a GPU's
# precision, not measured on a CPU) is taken to be like bfloat16.
BYTES_PER_ACTIVATION = {"bfloat16": 8.1, "float16": 8.1, "float32": 12.6}

# A forward pass alone (the style images) needs this fraction of the train step's bytes per activation.
FORWARD_ONLY_FRACTION = 0.5

# Bytes per output pixel that a tiled run (`tf_style.tiling.tiles`) keeps at the full size whatever its tiles: the
# image variable, its average, Adam's two moments and the summed gradient (float32 RGB, 12 bytes each), the
# content, start and result images and their resized copies on the host, and the temporaries of Adam's update.
# The content layers' features come on top (`_tiled_bytes_per_pixel`). Calibrated with the 4096 px run of the
# docs/print-size.md.
TILED_IMAGE_BYTES_PER_PIXEL = 320

# Float32 RGB images (12 bytes a pixel) an optimizer keeps beyond what the figures above were calibrated with,
# Adam's two moments: L-BFGS keeps its last iterate and gradient and two histories of changes instead.
EXTRA_STATE_IMAGES = {"adam": 0, "lbfgs": 2 + 2 * LBFGS.history_size - 2}


def activations_per_pixel(network: vgg.Network, layer_names: Sequence[str]) -> float:
    """VGG activation values per input pixel, through the deepest of `layer_names`.

    Each block works at a quarter of the positions of the one before: block1 at every pixel, block2 at one in
    four, and so on.
    """
    return sum(channels / 4 ** (vgg.block_of(name) - 1)
               for name, _, channels in network.layers_through_deepest(layer_names))


def estimate_peak_bytes(height: int, width: int, network: vgg.Network, layer_names: Sequence[str], compute_dtype: str,
                        style_shapes: Sequence[tuple] = (), batch_size: int = 1, optimizer: str = "adam") -> int:
    """Estimated peak resident memory of a stylization at `height` x `width` (the largest scale).

    Args:
        height, width: the output size.
        layer_names: the network's layers in use (content and style).
        compute_dtype: "float32", "bfloat16" or "float16", or a Keras dtype policy ("mixed_bfloat16").
        style_shapes: (height, width) of each style image as the network sees it at the largest scale.
        batch_size: how many images of this size are optimized together.
        optimizer: `config.optimizer`, whose state is kept at the output size.
    """
    return int(BASE_BYTES + _bytes_per_pixel(network, layer_names, compute_dtype)
               * _train_step_pixels(height, width, style_shapes, batch_size)
               + _extra_state_bytes_per_pixel(optimizer) * batch_size * height * width)


def _bytes_per_pixel(network: vgg.Network, layer_names: Sequence[str], compute_dtype: str) -> float:
    return activations_per_pixel(network, layer_names) * BYTES_PER_ACTIVATION[compute_dtype.removeprefix("mixed_")]


def _train_step_pixels(height: int, width: int, style_shapes: Sequence[tuple], batch_size: int = 1) -> float:
    """The batch's pixels, or the largest style image's in train-step equivalents if that is more."""
    style_pixels = max([style_height * style_width for style_height, style_width in style_shapes], default=0)
    return max(batch_size * height * width, FORWARD_ONLY_FRACTION * style_pixels)


def estimate_tiled_peak_bytes(height: int, width: int, tile_size: int, margin: int, network: vgg.Network,
                              layer_names: Sequence[str], content_layers: Sequence[str], compute_dtype: str,
                              optimizer: str = "adam") -> int:
    """Estimated peak resident memory of a run at `height` x `width` optimized in tiles of `tile_size` with
    `margin`: the full-size state, and the train step of the largest padded tile (a tile is within 16 px of
    `tile_size`; the margin is cut where the image ends)."""
    padded_pixels = (min(height, tile_size + 16 + 2 * margin) * min(width, tile_size + 16 + 2 * margin))
    return int(BASE_BYTES + _tiled_bytes_per_pixel(network, content_layers, optimizer) * height * width
               + _bytes_per_pixel(network, layer_names, compute_dtype) * padded_pixels)


def _tiled_bytes_per_pixel(network: vgg.Network, content_layers: Sequence[str], optimizer: str) -> float:
    """Full-size bytes per output pixel of a tiled run: the images, the optimizer's state and the content
    targets (float32)."""
    content_values = sum(channels / 4 ** (vgg.block_of(name) - 1)
                         for name, _, channels in network.conv_shapes if name in content_layers)
    return TILED_IMAGE_BYTES_PER_PIXEL + _extra_state_bytes_per_pixel(optimizer) + 4 * content_values


def _extra_state_bytes_per_pixel(optimizer: str) -> int:
    """Bytes per output pixel of `optimizer`'s state beyond Adam's (`EXTRA_STATE_IMAGES`)."""
    return 12 * EXTRA_STATE_IMAGES[optimizer]


def choose_tile_size(height: int, width: int, style_shapes: Sequence[tuple], network: vgg.Network,
                     layer_names: Sequence[str], content_layers: Sequence[str], compute_dtype: str, tile_size: int,
                     margin: int, available: Optional[int] = None, optimizer: str = "adam") -> int:
    """The tile size a run at `height` x `width` uses, refusing with one sentence one that would not fit.

    Args:
        tile_size: the size asked for (`--tile_size`); 0: none where the untiled step fits in the memory
            available, else the largest tile (a multiple of 16) that fits.
        margin: the tiles' margin.
        available: bytes available; None reads them from the system (and skips the checks if it cannot).

    Returns:
        The tile size, or 0 for an untiled run.

    Raises:
        UsageError: it would not fit, even in tiles; the message gives the estimate and what would fit.
    """
    compute_dtype = compute_dtype.removeprefix("mixed_")
    available = available_bytes() if available is None else available
    tiled_bytes = lambda size: estimate_tiled_peak_bytes(  # noqa: E731
        height, width, size, margin, network, layer_names, content_layers, compute_dtype, optimizer)
    if tile_size and max(height, width) > tile_size:
        if available is None or tiled_bytes(tile_size) <= available:
            return tile_size
        raise UsageError(f"a {width}x{height} result in tiles of {tile_size} px needs about "
                         f"{tiled_bytes(tile_size) / 1e9:.1f} GB of memory in {compute_dtype} (estimated), but "
                         f"{available / 1e9:.1f} GB are available; use a smaller --tile_size, or --tile_size=0 for "
                         "the largest tiles that fit")
    untiled_bytes = estimate_peak_bytes(height, width, network, layer_names, compute_dtype, style_shapes,
                                        optimizer=optimizer)
    if available is None or untiled_bytes <= available:
        return 0
    for candidate in range((max(height, width) - 1) // 16 * 16, 63, -16):
        if tiled_bytes(candidate) <= available:
            return candidate
    # Even the smallest tiles do not fit: the full-size state grows with the pixels, so the largest size that
    # fits scales with the square root of what is left for it.
    full_size_bytes = _tiled_bytes_per_pixel(network, content_layers, optimizer) * height * width
    left = available - (tiled_bytes(64) - full_size_bytes)
    shrink = min(1.0, max(0.0, left) / full_size_bytes) ** 0.5
    raise UsageError(f"a {width}x{height} result needs about {tiled_bytes(64) / 1e9:.1f} GB of memory in "
                     f"{compute_dtype} (estimated) even in tiles of 64 px, but {available / 1e9:.1f} GB are "
                     f"available; use --size={int(max(height, width) * shrink)} or less")


def available_bytes(meminfo_path: str = "/proc/meminfo") -> Optional[int]:
    """Memory this process may grow to: what it holds now plus what the system can still give it.

    MemAvailable from /proc/meminfo (free memory plus caches the kernel can drop), else the physical memory;
    within a cgroup-v2 `memory.max`. None when none of them can be read.
    """
    available = _meminfo_available(meminfo_path)
    if available is None:
        try:
            available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            return None
    available += _own_resident_bytes()
    limit = _cgroup_limit()
    return available if limit is None else min(available, limit)


def _meminfo_available(path: str) -> Optional[int]:
    try:
        with open(path) as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _own_resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _cgroup_limit() -> Optional[int]:
    """The memory limit of the control group, v2 or v1, if one is set."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as limit:
                text = limit.read().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text)
    return None


def largest_batch_that_fits(height: int, width: int, style_shapes: Sequence[tuple], network: vgg.Network,
                            layer_names: Sequence[str], compute_dtype: str, limit: int,
                            available: Optional[int] = None, optimizer: str = "adam") -> int:
    """How many images of this size, up to `limit`, fit in memory together (at least 1: one image is the
    caller's to refuse with `require_fits`)."""
    available = available_bytes() if available is None else available
    if available is None:
        return limit
    compute_dtype = compute_dtype.removeprefix("mixed_")
    batch_size = limit
    while batch_size > 1 and estimate_peak_bytes(height, width, network, layer_names, compute_dtype, style_shapes,
                                                 batch_size, optimizer) > available:
        batch_size -= 1
    return batch_size


def require_fits(height: int, width: int, style_shapes: Sequence[tuple], network: vgg.Network,
                 layer_names: Sequence[str], compute_dtype: str, available: Optional[int] = None,
                 optimizer: str = "adam") -> None:
    """Refuses, with one sentence, a stylization whose estimated peak memory exceeds what is available.

    Args:
        available: bytes available; None reads them from the system (and skips the check if it cannot).

    Raises:
        UsageError: it would not fit; the message gives the estimate and the largest size that fits.
    """
    compute_dtype = compute_dtype.removeprefix("mixed_")
    available = available_bytes() if available is None else available
    needed = estimate_peak_bytes(height, width, network, layer_names, compute_dtype, style_shapes,
                                 optimizer=optimizer)
    if available is None or needed <= available:
        return
    # Every image scales with --size, so the largest size that fits scales with the square root.
    shrink = (max(0.0, available - BASE_BYTES) / (needed - BASE_BYTES)) ** 0.5
    advice = f"use --size={int(max(height, width) * shrink)} or less"
    if compute_dtype == "float32":
        advice += " (or --precision=mixed_bfloat16, which needs about two thirds of the memory)"
    raise UsageError(f"a {width}x{height} result needs about {needed / 1e9:.1f} GB of memory in {compute_dtype} "
                     f"(estimated), but {available / 1e9:.1f} GB are available; {advice}")
