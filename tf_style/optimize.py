"""The optimization: targets computed once, one traced train step per image size, the Adam loop.

The loop runs in Python and does no I/O itself: every `progress_every` steps (and at snapshots and the end)
it reads the losses back from the device once and hands a `StepReport` to the callbacks, which print,
save or log. Between reports the device is never waited on.
"""

import dataclasses
import math
import time
from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_style import losses
from tf_style.config import StyleConfig
from tf_style.errors import DivergedError
from tf_style.features import FeatureExtractor

LOSS_NAMES = ("total", "content", "style", "tv")


@dataclasses.dataclass(frozen=True)
class StepReport:
    """What callbacks see of the run every few steps.

    Attributes:
        step: steps done so far (1-based).
        num_steps: steps in the whole run.
        losses: {"total", "content", "style", "tv"} -> float, weighted, at this step.
        image: the current result, float32 [H, W, 3] in [0, 255].
        elapsed_seconds: wall time since the first step started (tracing included).
    """

    step: int
    num_steps: int
    losses: dict
    image: np.ndarray
    elapsed_seconds: float


Callback = Callable[[StepReport], None]


@dataclasses.dataclass(frozen=True)
class StyleTargets:
    """What the result must match, computed once before the loop.

    Attributes:
        content_features: {layer: float32 [1, h, w, C]} of the content image.
        style_grams: {layer: float32 [1, C, C]} of the style image.
    """

    content_features: dict
    style_grams: dict


def compute_targets(extractor: FeatureExtractor, content_image: np.ndarray, style_image: np.ndarray,
                    config: StyleConfig) -> StyleTargets:
    """Content features and style Grams for float32 [H, W, 3] images in [0, 255]."""
    content_features = extractor(content_image[None])
    style_features = extractor(style_image[None])
    return StyleTargets(
        content_features={name: content_features[name] for name in config.content_layers},
        style_grams={name: losses.gram_matrix(style_features[name]) for name in config.style_layers},
    )


def weighted_losses(extractor: FeatureExtractor, images: tf.Tensor, targets: StyleTargets,
                    config: StyleConfig) -> dict:
    """The weighted loss terms and their sum for a batch of images: {name: [B]}."""
    features = extractor(images)
    style_layer_weights = dict(zip(config.style_layers, config.normalized_style_layer_weights))
    terms = {
        "content": config.content_weight * losses.content_loss(features, targets.content_features),
        "style": config.style_weight * losses.style_loss(features, targets.style_grams, style_layer_weights),
        "tv": config.tv_weight * losses.total_variation_loss(images),
    }
    terms["total"] = terms["content"] + terms["style"] + terms["tv"]
    return terms


class Optimization:
    """Adam on a `tf.Variable` image, with a train step traced once for the image's shape.

    Args:
        extractor: the VGG16 feature extractor.
        targets: content features and style Grams.
        initial_image: float32 [H, W, 3] in [0, 255], the start of the optimization.
        config: the options (weights, learning rate, ...).
        jit_compile: compile the train step with XLA.
    """

    def __init__(self, extractor: FeatureExtractor, targets: StyleTargets, initial_image: np.ndarray,
                 config: StyleConfig, jit_compile: bool = False):
        self.extractor = extractor
        self.targets = targets
        self.config = config
        self.image = tf.Variable(initial_image[None], dtype=tf.float32, name="image")
        self.optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
        if extractor.compute_dtype == "float16":
            # float16 gradients underflow without loss scaling.
            self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
        # Building the optimizer's slots now keeps the first call from tracing the step twice.
        self.optimizer.build([self.image])
        self.train_step = tf.function(self._train_step, jit_compile=jit_compile)

    def _train_step(self, content_features: dict, style_grams: dict) -> dict:
        targets = StyleTargets(content_features, style_grams)
        with tf.GradientTape() as tape:
            terms = weighted_losses(self.extractor, self.image, targets, self.config)
            total = tf.reduce_sum(terms["total"])
            if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
                total = self.optimizer.scale_loss(total)
        gradient = tape.gradient(total, self.image)
        self.optimizer.apply_gradients([(gradient, self.image)])
        # Pixel values outside [0, 255] cannot be saved; clipping keeps Adam inside the valid range.
        self.image.assign(tf.clip_by_value(self.image, 0.0, 255.0))
        return {name: tf.reduce_mean(value) for name, value in terms.items()}

    def run(self, num_steps: int, callbacks: Sequence[Callback] = (), save_every: int = 0,
            progress_every: int = 10) -> np.ndarray:
        """Runs `num_steps` steps; returns the final image, float32 [H, W, 3].

        Raises:
            DivergedError: a loss or the image became non-finite; `error.image` is the last finite image.
        """
        start = time.perf_counter()
        last_finite_image = self.image[0].numpy()
        for step in range(1, num_steps + 1):
            step_losses = self.train_step(self.targets.content_features, self.targets.style_grams)
            is_report_step = (step % progress_every == 0 or step == num_steps
                              or (save_every and step % save_every == 0))
            if not is_report_step:
                continue
            losses_now = {name: float(value) for name, value in step_losses.items()}
            image = self.image[0].numpy()
            if not all(math.isfinite(value) for value in losses_now.values()) or not np.isfinite(image).all():
                raise DivergedError(
                    f"the optimization diverged at step {step} (loss {losses_now['total']}); "
                    "use a smaller --learning_rate", step=step, image=last_finite_image)
            last_finite_image = image
            report = StepReport(step, num_steps, losses_now, image, time.perf_counter() - start)
            for callback in callbacks:
                callback(report)
        return last_finite_image


def initial_image(init: str, content_image: np.ndarray, seed: Optional[int],
                  load: Callable[[str], np.ndarray]) -> np.ndarray:
    """The start of the optimization: the content, uniform noise, or an image file resized to the content.

    Args:
        init: "content", "noise" or a path.
        content_image: float32 [H, W, 3] at the output size.
        seed: seed for the noise; None draws one.
        load: reads and resizes an image file to [H, W, 3] at the output size.
    """
    if init == "content":
        return content_image.copy()
    if init == "noise":
        generator = np.random.default_rng(seed)
        return generator.uniform(0.0, 255.0, size=content_image.shape).astype(np.float32)
    return load(init)
