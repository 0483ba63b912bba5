"""The train steps the benchmark measures, at one size on the bundled pair: tf_style's own (`TfStyleStep`, made by
the library's factories), a naive eager loop (`NaiveEagerStep`) and the TensorFlow tutorial's recipe
(`TutorialStep`). Calling a step runs one and waits for its result; `flops()` is its work, counted as
`FLOP_COUNTING` says.
"""

import dataclasses
import gc
import math
from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from benchmarks.timing import time_steps
from tf_style import api, images, planner
from tf_style.config import StyleConfig
from tf_style.errors import UsageError
from tf_style.network import convolution, vgg
from tf_style.network.device import plan_compute
from tf_style.objective.targets import compute_targets

# The layers of the TensorFlow tutorial (VGG19).
TUTORIAL_CONTENT_LAYERS = ("block5_conv2",)
TUTORIAL_STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")

FLOP_COUNTING = (
    "convolutions only, up to the deepest layer each model uses: forward 2*H*W*9*Cin*Cout per conv, plus the "
    "same again for the gradient with respect to the conv's input (the image is what is optimized); no weight "
    "gradients. Gram matrices, pooling, ReLU, losses and Adam are not counted (Grams would add about 6%). The "
    "naive loop is credited with the same work as tf_style's step: recomputing the targets is waste, not work.")


def parse_sizes(values: Sequence[str]) -> list:
    """The --sizes flag's values as long sides in pixels of the sample pair (`sample_images`).

    Raises:
        UsageError: a value is not an integer, or too small for a 4:3 image to reach VGG16's block5.
    """
    try:
        sizes = [int(value) for value in values]
    except ValueError:
        raise UsageError(f"--sizes must be integers, got {','.join(values)}") from None
    smallest = math.ceil(vgg.MIN_INPUT_SIDE * 4 / 3)
    if not sizes or min(sizes) < smallest:
        raise UsageError(f"--sizes must each be at least {smallest} (the short side of a 4:3 image must reach "
                         f"{vgg.MIN_INPUT_SIDE} pixels), got {','.join(values) or 'nothing'}")
    return sizes


def sample_images(size: int) -> tuple:
    """The bundled photo at 4:3 with long side `size`, and the bundled painting with long side `size`.

    Returns:
        (content, style), float32 [H, W, 3] in [0, 255]; content is [round(size * 3 / 4), size, 3].
    """
    content = images.resize(images.load_image(api.SAMPLE_CONTENT), round(size * 3 / 4), size)
    style = images.resize_long_side(images.load_image(api.SAMPLE_STYLE), size)
    return content, style


def conv_flops(model: keras.Model, height: int, width: int) -> int:
    """Forward FLOPs of the convolutions of a chain of layers (as VGG is) on a [1, H, W, 3] input."""
    total = 0
    shape = (1, height, width, 3)
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        shape = layer.compute_output_spec(keras.KerasTensor(shape)).shape
        if isinstance(layer, keras.layers.Conv2D):
            kernel_height, kernel_width, channels_in, channels_out = layer.kernel.shape
            total += 2 * shape[1] * shape[2] * kernel_height * kernel_width * channels_in * channels_out
    return total


def step_flops(model: keras.Model, height: int, width: int) -> int:
    """FLOPs of one step: the forward convolutions and their gradient with respect to the input."""
    return 2 * conv_flops(model, height, width)


class TfStyleStep:
    """tf_style's train step at one size, built by the library's own factories, as `stylize()` builds its last
    level's: a `Stylizer` plans and loads the pairs (`planner`), and its coarse-to-fine runner makes the
    optimization of the last level (`CoarseToFine.optimization_at`).

    Args:
        size: long side; the content is 4:3.
        precision: "auto" (the plan `stylize()` would choose) or a fixed precision such as "float32".
        batch_size: images optimized together in one step, as a batch run does (mirrored copies of the
            sample photo).
        conv_kernels: which of TensorFlow's kernels each convolution runs (`convolution.KernelPlan`); None: as
            the plan chooses.
        tile_size: run the step in tiles of this size (`tf_style.tiling.tiles`, one image); 0: untiled.
        two_regions: paint the top third and the rest in two styles (the sample painting and its mirror image)
            through region masks, as `--content_masks` does (untiled only).
    """

    def __init__(self, size: int, precision: str = "auto", batch_size: int = 1,
                 conv_kernels: Optional[convolution.KernelPlan] = None, tile_size: int = 0,
                 two_regions: bool = False):
        content, style = sample_images(size)
        self.batch_size = batch_size
        self.height, self.width = content.shape[:2]
        styles, region_masks = style, None
        if two_regions:
            styles = [style, style[:, ::-1]]
            region_masks = np.zeros((2, self.height, self.width), np.float32)
            region_masks[0, :self.height // 3] = 1.0
            region_masks[1] = 1.0 - region_masks[0]
        config = StyleConfig(size=size, precision=precision, tile_size=tile_size,
                             content_masks=None if region_masks is None else tuple(region_masks))
        plan = plan_compute(config.precision, config.xla)
        self.plan = plan if conv_kernels is None else dataclasses.replace(plan, conv_kernels=conv_kernels)
        self.stylizer = api.Stylizer(config, log=None, plan=self.plan)
        contents = [content if index % 2 == 0 else content[:, ::-1] for index in range(batch_size)]
        batch = planner.batch_of(self.stylizer.planner.prepared_pairs([(each, styles) for each in contents]))
        runner = self.stylizer.coarse_to_fine
        self.grid = runner.tile_grid(self.height, self.width, batch.tile_size)
        self.optimization = runner.optimization_at(runner.pyramid.levels[-1], batch)

    @property
    def config(self) -> StyleConfig:
        return self.stylizer.config

    @property
    def extractor(self):
        return self.stylizer.extractor

    def __call__(self) -> float:
        return float(self.optimization.train_step(self.optimization.targets)["total"][0])

    def flops(self) -> int:
        return self.batch_size * step_flops(self.extractor.model, self.height, self.width)


class NaiveEagerStep:
    """tf_style's float32 step run eagerly (no `tf.function`), recomputing the targets every step."""

    def __init__(self, size: int):
        self.tf_style_step = TfStyleStep(size, "float32")
        self.content, self.style = sample_images(size)

    def __call__(self) -> float:
        step = self.tf_style_step
        targets = compute_targets(step.extractor, self.content, [self.style], step.config,
                                  step.config.style_blend_weights)
        return float(step.optimization.train_step.python_function(targets)["total"][0])

    def flops(self) -> int:
        return self.tf_style_step.flops()


class TutorialStep:
    """The train step of the TensorFlow tutorial "Neural style transfer", for timing.

    VGG19 with random weights (the ImageNet weights need a download; the work per step is the same), style
    layers block1_conv1..block5_conv1, content block5_conv2, Grams divided by the number of positions, float32,
    `tf.function` without XLA, Adam(0.02, beta_1=0.99, epsilon=0.1) on an image in [0, 1], clipped after
    every step; loss weights style 1e-2, content 1e4, total variation 30.
    """

    def __init__(self, size: int):
        content, style = sample_images(size)
        vgg = keras.applications.VGG19(include_top=False, weights=None)
        vgg.trainable = False
        self.model = keras.Model(vgg.input, [vgg.get_layer(name).output
                                             for name in TUTORIAL_STYLE_LAYERS + TUTORIAL_CONTENT_LAYERS])
        self.style_targets = self._outputs(tf.constant(style[None] / 255.0))["style"]
        self.content_targets = self._outputs(tf.constant(content[None] / 255.0))["content"]
        self.image = tf.Variable(content[None] / 255.0, dtype=tf.float32)
        self.optimizer = keras.optimizers.Adam(learning_rate=0.02, beta_1=0.99, epsilon=1e-1)
        self.optimizer.build([self.image])
        self.train_step = tf.function(self._train_step)
        self.height, self.width = content.shape[:2]

    def _outputs(self, images_0_1: tf.Tensor) -> dict:
        outputs = self.model(keras.applications.vgg19.preprocess_input(images_0_1 * 255.0))
        num_style = len(TUTORIAL_STYLE_LAYERS)
        return {"style": [tutorial_gram_matrix(output) for output in outputs[:num_style]],
                "content": outputs[num_style:]}

    def _train_step(self) -> tf.Tensor:
        with tf.GradientTape() as tape:
            outputs = self._outputs(self.image)
            style_loss = tf.add_n([tf.reduce_mean(tf.square(gram - target))
                                   for gram, target in zip(outputs["style"], self.style_targets)])
            content_loss = tf.add_n([tf.reduce_mean(tf.square(feature - target))
                                     for feature, target in zip(outputs["content"], self.content_targets)])
            loss = (1e-2 / len(TUTORIAL_STYLE_LAYERS) * style_loss
                    + 1e4 / len(TUTORIAL_CONTENT_LAYERS) * content_loss
                    + 30 * tf.image.total_variation(self.image))
        gradient = tape.gradient(loss, self.image)
        self.optimizer.apply_gradients([(gradient, self.image)])
        self.image.assign(tf.clip_by_value(self.image, 0.0, 1.0))
        return loss

    def __call__(self) -> float:
        return float(tf.reduce_sum(self.train_step()))

    def flops(self) -> int:
        return step_flops(self.model, self.height, self.width)


def tutorial_seconds_per_step(size: int, num_steps: int, warmup_steps: int) -> float:
    """The median seconds of the tutorial recipe's step at `size`, its model freed afterwards."""
    step = TutorialStep(size)
    seconds = time_steps(step, num_steps, warmup_steps, budget_seconds=60.0)["seconds_per_step"]
    del step
    keras.backend.clear_session()
    gc.collect()
    return seconds


def timed_against_tutorial(run: Callable[[], dict], size: int, num_steps: int, warmup_steps: int,
                           progress: Callable[[str], None]) -> dict:
    """`run()`'s result (a dict with its `wall_seconds`: a preset timed through the CLI, say) beside the tutorial
    recipe's 1000 steps at `size`. The machine's speed drifts from minute to minute, so the tutorial's step is
    timed just before and just after the run and its 1000 steps estimated from the mean of the two."""
    progress(f"{size} px: tutorial recipe, before")
    before = tutorial_seconds_per_step(size, num_steps, warmup_steps)
    result = run()
    progress(f"{size} px: tutorial recipe, after")
    after = tutorial_seconds_per_step(size, num_steps, warmup_steps)
    tutorial = 1000 * (before + after) / 2
    return {**result, "tutorial_seconds_per_step_around": [before, after], "tutorial_1000_steps_seconds": tutorial,
            "ratio": result["wall_seconds"] / tutorial}


def tutorial_gram_matrix(features: tf.Tensor) -> tf.Tensor:
    """The tutorial's Gram: an einsum divided by the number of positions, [B, H, W, C] -> [B, C, C]."""
    num_positions = tf.cast(tf.shape(features)[1] * tf.shape(features)[2], tf.float32)
    return tf.linalg.einsum("bijc,bijd->bcd", features, features) / num_positions
