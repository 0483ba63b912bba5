"""The optimization: targets computed once per scale, one traced train step per image size, the Adam loop.

The loop runs in Python and does no I/O itself: every `progress_every` steps (and at snapshots and the end)
it reads the losses back from the device once and hands a `StepReport` to the callbacks, which print,
save or log. Between reports the device is never waited on.
"""

import dataclasses
import math
import time
from typing import Callable, NamedTuple, Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_style import losses
from tf_style.config import StyleConfig, scaled_size
from tf_style.errors import DivergedError
from tf_style.features import FeatureExtractor

LOSS_NAMES = ("total", "content", "style", "tv")

# Newton-Schulz iterations for the per-step covariance square root of the Wasserstein style loss.
_STEP_SQRT_ITERATIONS = 8


@dataclasses.dataclass(frozen=True)
class StepReport:
    """What callbacks see of the run every few steps.

    Attributes:
        step: steps done so far over all scales (1-based).
        num_steps: steps in the whole run.
        losses: {"total", "content", "style", "tv"} -> float, weighted, at this step.
        image: the current result (the moving average when averaging is on), float32 [H, W, 3] in [0, 255].
        elapsed_seconds: wall time since the first step started (tracing included).
        scale_index: which scale of a coarse-to-fine run (0-based).
        num_scales: how many scales the run has.
    """

    step: int
    num_steps: int
    losses: dict
    image: np.ndarray
    elapsed_seconds: float
    scale_index: int = 0
    num_scales: int = 1


Callback = Callable[[StepReport], None]


class StyleTargets(NamedTuple):
    """What the result must match, computed once per scale before the loop.

    A NamedTuple so that `tf.function` takes it as one nested argument.

    Attributes:
        content_features: {layer: float32 [1, h, w, C]} of the content image.
        style_grams: {layer: float32 [1, C, C]}, blended over the style images.
        style_means: {layer: float32 [1, C]}, blended (Wasserstein loss only, else empty).
        style_covariance_roots: {layer: float32 [1, C, C]} (Wasserstein loss only, else empty).
    """

    content_features: dict
    style_grams: dict
    style_means: dict
    style_covariance_roots: dict


def compute_targets(extractor: FeatureExtractor, content_image: np.ndarray, style_images: Sequence[np.ndarray],
                    config: StyleConfig, blend_weights: Sequence[float] = None) -> StyleTargets:
    """Content features and blended style statistics of float32 [H, W, 3] images in [0, 255].

    Args:
        blend_weights: the weight of each style image (normalized here); None for equal weights.
    """
    if isinstance(style_images, np.ndarray) and style_images.ndim == 3:
        style_images = [style_images]
    blend_weights = blend_weights or [1.0] * len(style_images)
    total_weight = float(sum(blend_weights))
    content_features = extractor(content_image[None])
    style_features = [extractor(image[None]) for image in style_images]
    weights = [weight / total_weight for weight in blend_weights]
    grams, means, roots = {}, {}, {}
    for name in config.style_layers:
        layer_features = [features[name] for features in style_features]
        # Blending second moments is what mixing the styles' pixels would do.
        grams[name] = tf.add_n([w * losses.gram_matrix(f) for w, f in zip(weights, layer_features)])
        if config.style_loss == "wasserstein":
            layer_means = [losses.feature_mean(f) for f in layer_features]
            means[name] = tf.add_n([w * m for w, m in zip(weights, layer_means)])
            # The mixture's covariance: the blended covariances plus the spread of the means around their
            # blend. Written this way, not as Gram - mean mean^T, it stays positive semi-definite in float32.
            covariance = tf.add_n([
                w * (losses.feature_covariance(f) + (m - means[name])[:, :, None] * (m - means[name])[:, None, :])
                for w, f, m in zip(weights, layer_features, layer_means)])
            roots[name] = losses.sqrtm_eigh(covariance)
    return StyleTargets(
        content_features={name: content_features[name] for name in config.content_layers},
        style_grams=grams, style_means=means, style_covariance_roots=roots)


def weighted_losses(extractor: FeatureExtractor, images: tf.Tensor, targets: StyleTargets,
                    config: StyleConfig) -> dict:
    """The weighted loss terms and their sum for a batch of images: {name: [B]}."""
    features = extractor(images)
    layer_weights = dict(zip(config.style_layers, config.normalized_style_layer_weights))
    if config.style_loss == "wasserstein":
        style = losses.wasserstein_style_loss(features, targets.style_means, targets.style_covariance_roots,
                                              layer_weights, _STEP_SQRT_ITERATIONS)
    else:
        style = losses.style_loss(features, targets.style_grams, layer_weights)
    terms = {
        "content": config.content_weight * losses.content_loss(features, targets.content_features),
        "style": config.style_weight * style,
        "tv": config.tv_weight * losses.total_variation_loss(images),
    }
    terms["total"] = terms["content"] + terms["style"] + terms["tv"]
    return terms


class Optimization:
    """Adam on a `tf.Variable` image at one size, with a train step traced once for that size.

    The output is an exponential moving average of the iterates (bias-corrected, as Adam's moments are):
    Adam keeps jittering pixels by about the learning rate, and the average removes that noise.

    Args:
        extractor: the VGG16 feature extractor.
        targets: content features and style statistics.
        initial_image: float32 [H, W, 3] in [0, 255], the start of the optimization.
        config: the options (weights, learning rate, averaging, ...).
        jit_compile: compile the train step with XLA.
    """

    def __init__(self, extractor: FeatureExtractor, targets: StyleTargets, initial_image: np.ndarray,
                 config: StyleConfig, jit_compile: bool = False):
        self.extractor = extractor
        self.targets = targets
        self.config = config
        self.image = tf.Variable(initial_image[None], dtype=tf.float32, name="image")
        self.average = tf.Variable(tf.zeros_like(self.image), name="image_average")
        self.num_averaged = tf.Variable(0.0, name="num_averaged")
        self.optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate, beta_2=0.99)
        if extractor.compute_dtype == "float16":
            # float16 gradients underflow without loss scaling.
            self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
        # Building the optimizer's slots now keeps the first call from tracing the step twice.
        self.optimizer.build([self.image])
        self.train_step = tf.function(self._train_step, jit_compile=jit_compile)

    def _train_step(self, targets: StyleTargets) -> dict:
        with tf.GradientTape() as tape:
            terms = weighted_losses(self.extractor, self.image, targets, self.config)
            total = tf.reduce_sum(terms["total"])
            if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
                total = self.optimizer.scale_loss(total)
        gradient = tape.gradient(total, self.image)
        self.optimizer.apply_gradients([(gradient, self.image)])
        # Pixel values outside [0, 255] cannot be saved; clipping keeps Adam inside the valid range.
        self.image.assign(tf.clip_by_value(self.image, 0.0, 255.0))
        decay = self.config.average_decay
        self.average.assign(decay * self.average + (1.0 - decay) * self.image)
        self.num_averaged.assign_add(1.0)
        return {name: tf.reduce_mean(value) for name, value in terms.items()}

    def result(self) -> np.ndarray:
        """The output image: the bias-corrected moving average, or the last iterate without averaging."""
        decay = self.config.average_decay
        if decay == 0.0 or self.num_averaged.numpy() == 0:
            return self.image[0].numpy()
        correction = 1.0 - decay ** float(self.num_averaged.numpy())
        return np.clip(self.average[0].numpy() / correction, 0.0, 255.0)

    def run(self, num_steps: int, callbacks: Sequence[Callback] = (), save_every: int = 0,
            progress_every: int = 10, first_step: int = 1, total_steps: int = None,
            scale_index: int = 0, num_scales: int = 1, start_time: float = None) -> np.ndarray:
        """Runs `num_steps` steps; returns the result, float32 [H, W, 3].

        `first_step`, `total_steps`, `scale_index`, `num_scales` and `start_time` place this run inside a
        coarse-to-fine run, for the reports.

        Raises:
            DivergedError: a loss or the image became non-finite; `error.image` is the last finite result.
        """
        start_time = time.perf_counter() if start_time is None else start_time
        total_steps = total_steps or num_steps
        last_finite_image = self.result()
        for step in range(first_step, first_step + num_steps):
            step_losses = self.train_step(self.targets)
            is_last = step == first_step + num_steps - 1
            if not (is_last or step % progress_every == 0 or (save_every and step % save_every == 0)):
                continue
            losses_now = {name: float(value) for name, value in step_losses.items()}
            image = self.result()
            if not all(math.isfinite(value) for value in losses_now.values()) or not np.isfinite(image).all():
                raise DivergedError(
                    f"the optimization diverged at step {step} (loss {losses_now['total']}); "
                    "use a smaller --learning_rate", step=step, image=last_finite_image)
            last_finite_image = image
            report = StepReport(step, total_steps, losses_now, image, time.perf_counter() - start_time,
                                scale_index, num_scales)
            for callback in callbacks:
                callback(report)
        return last_finite_image


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Antialiased Lanczos resize of a float32 [H, W, 3] image, clipped to [0, 255]."""
    if image.shape[:2] == (height, width):
        return image
    resized = tf.image.resize(image, (height, width), method="lanczos3", antialias=True)
    return np.clip(resized.numpy(), 0.0, 255.0).astype(np.float32)


def stylize_coarse_to_fine(extractor: FeatureExtractor, content_image: np.ndarray,
                           style_images: Sequence[np.ndarray], start_image: np.ndarray, config: StyleConfig,
                           callbacks: Sequence[Callback] = (), jit_compile: bool = False) -> np.ndarray:
    """Optimizes at each of `config.scale_sizes()`, starting each scale from the last one's result.

    Small scales are cheap and give the result the style's large structures (a swirl spanning the sky);
    each larger scale then only has to add detail. With one scale this is plain Gatys.

    Args:
        content_image: float32 [H, W, 3] at the output size.
        style_images: float32 [h, w, 3] each, as large as they will be seen at the final scale.
        start_image: float32 [H, W, 3], the start of the first scale (resized to it).

    Returns:
        float32 [H, W, 3] in [0, 255].
    """
    height, width = content_image.shape[:2]
    sizes = config.scale_sizes()
    total_steps = sum(config.steps_at_scale(index) for index in range(len(sizes)))
    image = start_image
    first_step = 1
    start_time = time.perf_counter()
    for scale_index, long_side in enumerate(sizes):
        scale_height, scale_width = scaled_size(height, width, long_side)
        scale_factor = long_side / config.size
        scaled_styles = [resize_image(style, *scaled_size(*style.shape[:2],
                                                           max(1, round(max(style.shape[:2]) * scale_factor))))
                         for style in style_images]
        targets = compute_targets(extractor, resize_image(content_image, scale_height, scale_width),
                                  scaled_styles, config, config.style_blend_weights)
        optimization = Optimization(extractor, targets, resize_image(image, scale_height, scale_width), config,
                                    jit_compile=jit_compile)
        num_steps = config.steps_at_scale(scale_index)
        image = optimization.run(num_steps, callbacks, save_every=config.save_every,
                                 progress_every=config.progress_every, first_step=first_step,
                                 total_steps=total_steps, scale_index=scale_index, num_scales=len(sizes),
                                 start_time=start_time)
        first_step += num_steps
    return image
