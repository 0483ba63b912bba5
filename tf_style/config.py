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
from tf_style.vgg16 import CONV_LAYERS as VGG16_CONV_LAYERS

DEFAULT_CONTENT_LAYERS = ("block4_conv2",)
DEFAULT_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")

WEIGHT_SOURCES = ("hed", "imagenet")
POOLING_MODES = ("max", "avg")
INIT_MODES = ("content", "noise", "style_noise", "style_colors")
PADDING_MODES = ("zero", "replicate", "reflect")
STYLE_LOSSES = ("gram", "wasserstein")
XLA_MODES = ("auto", "true", "false")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
MAX_LEARNING_RATE = 255.0


def _keeps_the_result(default):
    """A field whose value changes neither the optimization nor its result, so a checkpoint made with another
    value still resumes. `seed` acts only through the start image, which a checkpoint compares by digest;
    `precision` and `xla` through the dtype and XLA setting they resolve to, compared likewise;
    `original_colors` only recolours the final result."""
    return dataclasses.field(default=default, metadata={"changes_the_result": False})


@dataclasses.dataclass(frozen=True)
class StyleConfig:
    """Options of one stylization. See the README's flag table for what each one does.

    Attributes:
        size: long side of the output in pixels.
        steps: Adam steps at the last scale (or the only one).
        learning_rate: Adam step size, in pixel values (the image lives in [0, 255]).
        content_weight: weight of the content loss, which pulls back towards the photo in proportion to how
            far the result has drifted from it.
        style_weight: weight of the style loss.
        tv_weight: weight of the total-variation (smoothness) loss.
        content_layers: VGG16 layers whose activations the result must keep from the content image.
        style_layers: VGG16 layers whose Gram matrices the result must take from the style image.
        style_layer_weights: relative weight of each style layer (normalized to sum to 1); None for equal.
        style_loss: "gram" (Gatys et al.) or "wasserstein" (mean and covariance of the features, compared
            as Gaussians with the 2-Wasserstein distance).
        style_blend_weights: with several style images, the weight of each in the blended target; None
            for equal.
        style_scale: size at which the style image is seen, relative to the output's long side.
        initial_size: long side of the first scale of a coarse-to-fine run; scales grow by at most sqrt(2)
            up to `size`. 0 (or >= size) optimizes at `size` only.
        initial_steps: Adam steps at the first of several scales; None means `steps`. The scales between
            take a geometric interpolation of `initial_steps` and `steps`.
        warm_start_optimizer: start Adam at each scale after the first from the previous scale's moments,
            upsampled, instead of from zero.
        scale_detail: each scale after the first starts from the previous result upsampled plus this much of
            the start image's detail between the two scales (the photo's, by default); 0 starts from the
            bare upsampled result, whose smoothness grows a grid-like texture.
        average_decay: decay of the exponential moving average of the image that is the output (it
            removes the high-frequency noise Adam leaves); 0 outputs the last iterate.
        original_colors: keep the content's colours, take only the luminance from the stylized result.
        weights: "hed" (bundled, no download), "imagenet" (Keras download) or a path to a weights file.
        pooling: "max" or "avg" pooling between VGG16 blocks.
        padding: the convolutions' padding: "zero", "replicate" or "reflect".
        init: start image: "content", "noise" (uniform), "style_noise" (noise with the style's colour
            statistics), "style_colors" (the content recoloured with the style's colour statistics) or a
            path to an image.
        seed: random seed for the noise start; None draws one.
        save_every: write an intermediate result every this many steps; 0 never.
        xla: "auto", "true" or "false": compile the train step with XLA.
        precision: "auto", "float32", "mixed_bfloat16" or "mixed_float16" compute for the network.
        progress_every: read the losses back from the device every this many steps.
        checkpoint_dir: where to keep checkpoints to resume an interrupted run from; None for none.
        checkpoint_every: save a checkpoint every this many steps (also at the end of each scale and on an
            interrupt).
        batch_size: in a batch run, at most this many images of one size are optimized together in one
            train step (fewer if memory is short); it changes the speed, not the results.
    """

    size: int = 512
    steps: int = 40
    learning_rate: float = 5.0
    content_weight: float = 4.0
    style_weight: float = 1.0
    tv_weight: float = 2.0
    content_layers: tuple = DEFAULT_CONTENT_LAYERS
    style_layers: tuple = DEFAULT_STYLE_LAYERS
    style_layer_weights: Optional[tuple] = None
    style_loss: str = "gram"
    style_blend_weights: Optional[tuple] = None
    style_scale: float = 1.0
    initial_size: int = 128
    initial_steps: Optional[int] = 150
    warm_start_optimizer: bool = True
    scale_detail: float = 1.0
    average_decay: float = 0.99
    original_colors: bool = _keeps_the_result(False)
    weights: str = "hed"
    pooling: str = "max"
    padding: str = "replicate"
    init: str = "content"
    seed: Optional[int] = _keeps_the_result(None)
    save_every: int = _keeps_the_result(0)
    xla: str = _keeps_the_result("auto")
    precision: str = _keeps_the_result("auto")
    progress_every: int = _keeps_the_result(10)
    checkpoint_dir: Optional[str] = _keeps_the_result(None)
    checkpoint_every: int = _keeps_the_result(50)
    batch_size: int = _keeps_the_result(4)

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
        _require_choice("style_loss", self.style_loss, STYLE_LOSSES)
        if self.style_blend_weights is not None:
            blend = tuple(self.style_blend_weights)
            if any(not _is_finite_number(w) or w < 0 for w in blend) or sum(blend) <= 0:
                raise UsageError(
                    f"--style_blend_weights must be non-negative numbers, not all zero, got {list(blend)}")
            object.__setattr__(self, "style_blend_weights", tuple(float(w) for w in blend))
        if not _is_finite_number(self.style_scale) or self.style_scale <= 0:
            raise UsageError(f"--style_scale must be a positive number, got {self.style_scale}")
        if not isinstance(self.initial_size, int) or self.initial_size < 0:
            raise UsageError(f"--initial_size must be 0 (single scale) or a positive number of pixels, "
                             f"got {self.initial_size!r}")
        if self.initial_steps is not None:
            _require_positive_int("initial_steps", self.initial_steps)
        if not isinstance(self.warm_start_optimizer, bool):
            raise UsageError(f"--warm_start_optimizer must be true or false, got {self.warm_start_optimizer!r}")
        if not _is_finite_number(self.scale_detail) or self.scale_detail < 0:
            raise UsageError(f"--scale_detail must be a non-negative number (1: all of the photo's detail, "
                             f"0: none), got {self.scale_detail}")
        if not _is_finite_number(self.average_decay) or not 0 <= self.average_decay < 1:
            raise UsageError(f"--average_decay must be in [0, 1), got {self.average_decay}")
        if self.weights not in WEIGHT_SOURCES and not os.path.isfile(self.weights):
            raise UsageError(
                f"--weights must be one of {', '.join(WEIGHT_SOURCES)} or the path of a weights file; "
                f"no file at {self.weights!r}")
        _require_choice("pooling", self.pooling, POOLING_MODES)
        _require_choice("padding", self.padding, PADDING_MODES)
        if self.init not in INIT_MODES and not os.path.isfile(self.init):
            raise UsageError(
                f"--init must be one of {', '.join(INIT_MODES)} or the path of an image; no file at {self.init!r}")
        if self.seed is not None and not isinstance(self.seed, int):
            raise UsageError(f"--seed must be an integer, got {self.seed!r}")
        _require_choice("xla", self.xla, XLA_MODES)
        _require_choice("precision", self.precision, PRECISIONS)
        if self.checkpoint_dir is not None and (not isinstance(self.checkpoint_dir, str) or not self.checkpoint_dir):
            raise UsageError(f"--checkpoint_dir must be a directory path, got {self.checkpoint_dir!r}")
        _require_positive_int("checkpoint_every", self.checkpoint_every)
        _require_positive_int("batch_size", self.batch_size)
        # Adam moves every pixel by about the learning rate on each step: beyond the whole range of pixel
        # values every step slams pixels to black or white, and the loss jumps about without ever being NaN.
        if self.learning_rate > MAX_LEARNING_RATE:
            raise UsageError(f"--learning_rate must be at most {MAX_LEARNING_RATE:g} (Adam moves each pixel by "
                             f"about that much per step, and pixels range over 0..255); try 1 to 10, got "
                             f"{self.learning_rate:g}")

    @property
    def normalized_style_layer_weights(self) -> tuple:
        """Per-style-layer weights that sum to 1."""
        # Equal by default, as in the paper. Measured on the bundled pair at 512 px (README, Examples): with the
        # normalized losses, weights heavier on the shallow layers (16:8:4:2:1, or crowsonkb's 256:64:16:4:1)
        # paint short, embossed strokes; equal weights give the sky the painting's large swirls.
        weights = self.style_layer_weights or (1.0,) * len(self.style_layers)
        total = sum(weights)
        return tuple(w / total for w in weights)

    def scale_sizes(self) -> tuple:
        """Long sides of the coarse-to-fine scales, ending at `size`, each at most sqrt(2) times the last."""
        if not self.initial_size or self.initial_size >= self.size:
            return (self.size,)
        num_scales = math.ceil(math.log(self.size / self.initial_size) / math.log(math.sqrt(2)) - 1e-9) + 1
        ratio = (self.size / self.initial_size) ** (1 / (num_scales - 1))
        return tuple(round(self.initial_size * ratio ** index) for index in range(num_scales))

    def steps_at_scale(self, scale_index: int) -> int:
        """Adam steps at the scale with this index (0 is the first).

        A step costs about twice as much at each larger scale, and the large structures form at the small
        scales, so the steps fall geometrically from `initial_steps` at the first scale to `steps` at the last.
        """
        num_scales = len(self.scale_sizes())
        if self.initial_steps is None or num_scales == 1:
            return self.steps
        fraction = scale_index / (num_scales - 1)
        return max(1, round(self.initial_steps * (self.steps / self.initial_steps) ** fraction))

    def require_no_checkpoints(self, run: str) -> None:
        """Refuses `checkpoint_dir` for a run of many results, which resumes by skipping finished ones.

        Args:
            run: what the run is, for the message: "a batch run", "a pipeline".
        """
        if self.checkpoint_dir:
            raise UsageError(f"--checkpoint_dir resumes a run of one content and one style; {run} resumes by "
                             "skipping the results it has already written: drop --checkpoint_dir")

    def require_single_style_per_result(self, run: str) -> None:
        """Refuses the options that belong to a run of one content and one style, for a batch or a pipeline.

        Args:
            run: what the run is, for the message: "a batch run", "a pipeline".
        """
        self.require_no_checkpoints(run)
        if self.style_blend_weights is not None:
            raise UsageError(f"--style_blend_weights blends the styles of one run; {run} stylizes with each "
                             "--style separately: drop --style_blend_weights")

    @classmethod
    def options_that_change_the_result(cls) -> tuple:
        """The names of the fields a checkpoint must match to resume (see `_keeps_the_result`)."""
        return tuple(field.name for field in dataclasses.fields(cls)
                     if field.metadata.get("changes_the_result", True))

    def replace(self, **changes) -> "StyleConfig":
        """A copy with some options changed (validated again)."""
        return dataclasses.replace(self, **changes)


def scaled_size(height: int, width: int, long_side: int) -> tuple:
    """(height, width) scaled so that the longer side is `long_side`, keeping the aspect ratio."""
    scale = long_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


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
