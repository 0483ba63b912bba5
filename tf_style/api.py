"""The Python API: `stylize()` turns a content and a style image into a stylized array.

The command line is a thin shell around this function, so a notebook gets exactly what the CLI gets.
"""

import os
from typing import Optional, Sequence

import numpy as np

from tf_style import images
from tf_style.config import StyleConfig
from tf_style.device import plan_compute
from tf_style.errors import UsageError
from tf_style.features import build_feature_extractor
from tf_style.optimize import Callback, Optimization, compute_targets, initial_image

SAMPLES_DIR = os.path.join(os.path.dirname(__file__), "samples")
SAMPLE_CONTENT = os.path.join(SAMPLES_DIR, "tubingen.jpg")
SAMPLE_STYLE = os.path.join(SAMPLES_DIR, "starry_night.jpg")


def stylize(content, style, config: Optional[StyleConfig] = None, callbacks: Sequence[Callback] = (),
            log=print, **options) -> np.ndarray:
    """Paints `content` in the style of `style` (Gatys et al. 2016).

    Args:
        content: the photo: a path, a PIL image or an array ([H, W, 3] uint8 or floats in [0, 255]).
        style: the painting, in any of the same forms.
        config: a StyleConfig; `options` override its fields. None starts from the defaults.
        callbacks: called with a `StepReport` every `config.progress_every` steps, at every
            `config.save_every`-th step and at the end.
        log: where one-line notices (the compute plan) go; None for silence.
        **options: StyleConfig fields, e.g. `size=256, steps=200, style_weight=2.0`.

    Returns:
        The result, float32 [H, W, 3] in [0, 255], with the content's aspect ratio and long side `size`.

    Raises:
        UsageError: bad images or options.
        DivergedError: the optimization became non-finite (try a smaller learning rate).

    Example:
        >>> import tf_style
        >>> result = tf_style.stylize("photo.jpg", "painting.jpg", size=256, steps=200)
    """
    config = config.replace(**options) if config is not None else StyleConfig(**options)
    content_image = images.load_image(content, "content image")
    style_image = images.load_image(style, "style image")
    height, width = images.scaled_size(*content_image.shape[:2], config.size)
    if min(height, width) < images.MIN_INPUT_SIDE:
        raise UsageError(f"--size={config.size} makes the result {width}x{height} pixels; VGG16 needs at least "
                         f"{images.MIN_INPUT_SIDE} on each side: use a larger --size")
    content_image = images.resize(content_image, height, width)
    style_image = images.resize_long_side(style_image, config.size)
    start_image = initial_image(
        config.init, content_image, config.seed,
        load=lambda path: images.resize(images.load_image(path, "--init image"), height, width))

    plan = plan_compute(config.precision, config.xla)
    if log is not None:
        log(f"tf_style: {plan.reason}")
    extractor = build_feature_extractor(config.content_layers + config.style_layers, config.weights,
                                        config.pooling, plan.dtype_policy)
    targets = compute_targets(extractor, content_image, style_image, config)
    optimization = Optimization(extractor, targets, start_image, config, jit_compile=plan.jit_compile)
    return optimization.run(config.steps, callbacks, save_every=config.save_every,
                            progress_every=config.progress_every)
