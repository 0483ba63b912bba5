"""Shared fixtures: small synthetic images, made here so no test depends on files outside the repo."""

import os

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def gradient_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth colour gradient with a little noise: float32 [H, W, 3] in [0, 255]."""
    rows = np.linspace(0, 1, height)[:, None]
    cols = np.linspace(0, 1, width)[None, :]
    noise = np.random.default_rng(seed).uniform(-20, 20, (height, width, 3))
    image = np.stack([255 * rows * np.ones_like(cols), 255 * cols * np.ones_like(rows),
                      128 + 100 * np.sin(8 * rows + 5 * cols)], axis=-1) + noise
    return np.clip(image, 0, 255).astype(np.float32)


def stripes_image(height: int, width: int) -> np.ndarray:
    """Diagonal coloured stripes, a stand-in painting: float32 [H, W, 3] in [0, 255]."""
    rows, cols = np.mgrid[0:height, 0:width]
    phase = (rows + cols) / 6.0
    image = np.stack([127 + 127 * np.sin(phase), 127 + 127 * np.sin(phase + 2), 127 + 127 * np.cos(phase)], -1)
    return image.astype(np.float32)


@pytest.fixture
def content_path(tmp_path):
    path = tmp_path / "content.png"
    Image.fromarray(gradient_image(48, 64).astype(np.uint8)).save(path)
    return str(path)


@pytest.fixture
def style_path(tmp_path):
    path = tmp_path / "style.jpg"
    Image.fromarray(stripes_image(64, 64).astype(np.uint8)).save(path)
    return str(path)


@pytest.fixture(scope="session")
def extractor():
    """The network `tf_style.stylize` builds with the default options and --precision=float32 on this machine;
    built once per test run (per worker)."""
    from tf_style.config import StyleConfig
    from tf_style.network.device import plan_compute
    from tf_style.network.features import extractor_for
    plan = plan_compute("float32")
    return extractor_for(StyleConfig(), plan.dtype_policy, plan.conv_kernels)
