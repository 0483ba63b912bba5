"""The Python API: `stylize()` turns a content image and one or more style images into a stylized array.

The command line is a thin shell around this function, so a notebook gets exactly what the CLI gets.
"""

import os
from typing import Optional, Sequence

import numpy as np

from tf_style import color, images, memory
from tf_style.config import StyleConfig, scaled_size
from tf_style.device import ComputePlan, plan_compute
from tf_style.errors import UsageError
from tf_style.features import build_feature_extractor
from tf_style.optimize import Callback, stylize_coarse_to_fine

SAMPLES_DIR = os.path.join(os.path.dirname(__file__), "samples")
SAMPLE_CONTENT = os.path.join(SAMPLES_DIR, "tubingen.jpg")
SAMPLE_STYLE = os.path.join(SAMPLES_DIR, "starry_night.jpg")


def stylize(content, style, config: Optional[StyleConfig] = None, callbacks: Sequence[Callback] = (),
            log=print, **options) -> np.ndarray:
    """Paints `content` in the style of `style` (Gatys et al. 2016).

    Args:
        content: the photo: a path, a PIL image or an array ([H, W, 3] uint8 or floats in [0, 255]).
        style: the painting, in any of the same forms, or a list of them to blend (see
            `style_blend_weights`).
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
        >>> result = tf_style.stylize("photo.jpg", ["a.jpg", "b.jpg"], size=256, style_blend_weights=(3, 7))
    """
    config = config.replace(**options) if config is not None else StyleConfig(**options)
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    if not styles:
        raise UsageError("--style: give at least one style image")
    if config.style_blend_weights is not None and len(config.style_blend_weights) != len(styles):
        raise UsageError(f"--style_blend_weights has {len(config.style_blend_weights)} values for "
                         f"{len(styles)} style images; give one weight per style image")
    content_image = images.load_image(content, "content image")
    style_images = [images.load_image(path, "style image") for path in styles]
    height, width = scaled_size(*content_image.shape[:2], config.size)
    smallest_side = min(scaled_size(height, width, config.scale_sizes()[0]))
    if smallest_side < images.MIN_INPUT_SIDE:
        raise UsageError(f"--size={config.size} (first scale {config.scale_sizes()[0]}) makes the result "
                         f"{smallest_side} pixels on its short side; VGG16 needs at least "
                         f"{images.MIN_INPUT_SIDE}: use a larger --size or --initial_size")
    style_long_side = max(images.MIN_INPUT_SIDE, round(config.size * config.style_scale))
    style_shapes = [scaled_size(*image.shape[:2], style_long_side) for image in style_images]
    plan = plan_compute(config.precision, config.xla)
    # Before resizing: resizing to a --size far too large would itself need gigabytes.
    require_memory(height, width, style_shapes, config, plan)
    content_image = images.resize(content_image, height, width)
    style_images = [images.resize(image, *shape) for image, shape in zip(style_images, style_shapes)]
    start_image = _start_image(config, content_image, style_images)

    if log is not None:
        log(f"tf_style: {plan.reason}; scales {'→'.join(map(str, config.scale_sizes()))} px")
    extractor = build_feature_extractor(config.content_layers + config.style_layers, config.weights,
                                        config.pooling, plan.dtype_policy, config.padding)
    result = stylize_coarse_to_fine(extractor, content_image, style_images, start_image, config, callbacks,
                                    jit_compile=plan.jit_compile)
    if config.original_colors:
        result = color.transfer_luminance(result, content_image)
    return result


def require_memory(height: int, width: int, style_shapes, config: StyleConfig, plan: ComputePlan) -> None:
    """Refuses, with a UsageError, a run whose train step would not fit in this machine's memory.

    On a GPU the allocator fails with an error instead of the kernel killing the process, so only CPU runs
    are checked.
    """
    if plan.device == "CPU":
        memory.require_fits(height, width, style_shapes, config.content_layers + config.style_layers,
                            plan.dtype_policy)


def _start_image(config: StyleConfig, content_image: np.ndarray, style_images: list) -> np.ndarray:
    """The start of the optimization at the output size, as `config.init` asks."""
    # The colour reference for the style-coloured starts is the most heavily weighted style.
    blend = config.style_blend_weights or (1.0,) * len(style_images)
    main_style = style_images[int(np.argmax(blend))]
    rng = np.random.default_rng(config.seed)
    if config.init == "content":
        return content_image.copy()
    if config.init == "noise":
        return rng.uniform(0.0, 255.0, size=content_image.shape).astype(np.float32)
    if config.init == "style_noise":
        return color.colored_noise(content_image.shape, main_style, rng).astype(np.float32)
    if config.init == "style_colors":
        return color.match_color_statistics(content_image, main_style).astype(np.float32)
    return images.resize(images.load_image(config.init, "--init image"), *content_image.shape[:2])
