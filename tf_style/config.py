"""Every option of a stylization, with its default and its validation, in one place.

The command line (`main.py`) and the Python API (`tf_style.stylize`) both build a `StyleConfig`, so the two
cannot drift apart. Validation raises `UsageError` with the option's flag name, so the same message reads
right from the shell and from a notebook.
"""

import dataclasses
import math
import os
from typing import Optional

from tf_style.errors import UsageError

# The convolution layers of VGG16 in network order, named as in `keras.applications.VGG16`.
VGG16_CONV_LAYERS = (
    "block1_conv1", "block1_conv2",
    "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3",
    "block4_conv1", "block4_conv2", "block4_conv3",
    "block5_conv1", "block5_conv2", "block5_conv3",
)

DEFAULT_CONTENT_LAYERS = ("block4_conv2",)
DEFAULT_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")

WEIGHT_SOURCES = ("hed", "imagenet")
POOLING_MODES = ("max", "avg")
INIT_MODES = ("content", "noise")
XLA_MODES = ("auto", "true", "false")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")


@dataclasses.dataclass(frozen=True)
class StyleConfig:
    """Options of one stylization. See the README's flag table for what each one does.

    Attributes:
        size: long side of the output in pixels.
        steps: number of Adam steps.
        learning_rate: Adam step size, in pixel values (the image lives in [0, 255]).
        content_weight: weight of the content loss.
        style_weight: weight of the style loss.
        tv_weight: weight of the total-variation (smoothness) loss.
        content_layers: VGG16 layers whose activations the result must keep from the content image.
        style_layers: VGG16 layers whose Gram matrices the result must take from the style image.
        style_layer_weights: relative weight of each style layer (normalized to sum to 1); None for equal.
        weights: "hed" (bundled, no download), "imagenet" (Keras download) or a path to a weights file.
        pooling: "max" or "avg" pooling between VGG16 blocks.
        init: start image: "content", "noise" or a path to an image.
        seed: random seed for the noise start; None draws one.
        save_every: write an intermediate result every this many steps; 0 never.
        xla: "auto", "true" or "false": compile the train step with XLA.
        precision: "auto", "float32", "mixed_bfloat16" or "mixed_float16" compute for the network.
        progress_every: read the losses back from the device every this many steps.
    """

    size: int = 512
    steps: int = 500
    learning_rate: float = 4.0
    content_weight: float = 1.0
    style_weight: float = 1.0
    tv_weight: float = 1.0
    content_layers: tuple = DEFAULT_CONTENT_LAYERS
    style_layers: tuple = DEFAULT_STYLE_LAYERS
    style_layer_weights: Optional[tuple] = None
    weights: str = "hed"
    pooling: str = "max"
    init: str = "content"
    seed: Optional[int] = None
    save_every: int = 0
    xla: str = "auto"
    precision: str = "auto"
    progress_every: int = 10

    def __post_init__(self):
        _require_positive_int("size", self.size)
        _require_positive_int("steps", self.steps)
        _require_positive_int("progress_every", self.progress_every)
        if not isinstance(self.save_every, int) or self.save_every < 0:
            raise UsageError(f"--save_every must be 0 (never) or a positive number of steps, got {self.save_every}")
        if not _is_finite_number(self.learning_rate) or self.learning_rate <= 0:
            raise UsageError(f"--learning_rate must be a positive number, got {self.learning_rate}")
        for name in ("content_weight", "style_weight", "tv_weight"):
            value = getattr(self, name)
            if not _is_finite_number(value) or value < 0:
                raise UsageError(f"--{name} must be a non-negative number, got {value}")
        object.__setattr__(self, "content_layers", _layer_tuple("content_layers", self.content_layers))
        object.__setattr__(self, "style_layers", _layer_tuple("style_layers", self.style_layers))
        if self.style_layer_weights is not None:
            weights = tuple(self.style_layer_weights)
            if len(weights) != len(self.style_layers):
                raise UsageError(
                    f"--style_layer_weights has {len(weights)} values but --style_layers names "
                    f"{len(self.style_layers)} layers; give one weight per style layer")
            if any(not _is_finite_number(w) or w < 0 for w in weights) or sum(weights) <= 0:
                raise UsageError(
                    f"--style_layer_weights must be non-negative numbers, not all zero, got {list(weights)}")
            object.__setattr__(self, "style_layer_weights", tuple(float(w) for w in weights))
        if self.weights not in WEIGHT_SOURCES and not os.path.isfile(self.weights):
            raise UsageError(
                f"--weights must be one of {', '.join(WEIGHT_SOURCES)} or the path of a weights file; "
                f"no file at {self.weights!r}")
        _require_choice("pooling", self.pooling, POOLING_MODES)
        if self.init not in INIT_MODES and not os.path.isfile(self.init):
            raise UsageError(
                f"--init must be one of {', '.join(INIT_MODES)} or the path of an image; no file at {self.init!r}")
        if self.seed is not None and not isinstance(self.seed, int):
            raise UsageError(f"--seed must be an integer, got {self.seed!r}")
        _require_choice("xla", self.xla, XLA_MODES)
        _require_choice("precision", self.precision, PRECISIONS)

    @property
    def normalized_style_layer_weights(self) -> tuple:
        """Per-style-layer weights that sum to 1."""
        weights = self.style_layer_weights or (1.0,) * len(self.style_layers)
        total = sum(weights)
        return tuple(w / total for w in weights)

    def replace(self, **changes) -> "StyleConfig":
        """A copy with some options changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _require_positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise UsageError(f"--{name} must be a positive integer, got {value!r}")


def _require_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise UsageError(f"--{name} must be one of {', '.join(choices)}, got {value!r}")


def _layer_tuple(name: str, layers) -> tuple:
    if isinstance(layers, str):
        layers = [part.strip() for part in layers.split(",") if part.strip()]
    layers = tuple(layers)
    if not layers:
        raise UsageError(f"--{name} must name at least one VGG16 layer, e.g. block4_conv2")
    for layer in layers:
        if layer not in VGG16_CONV_LAYERS:
            raise UsageError(
                f"--{name}: unknown layer {layer!r}; VGG16 layers are {', '.join(VGG16_CONV_LAYERS)}")
    return layers
