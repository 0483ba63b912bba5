"""The optimization: targets computed once per scale, one traced train step per image size, the Adam loop.

The loop runs in Python. Every `progress_every` steps (and at snapshots, checkpoints and the end) it reads the
losses back from the device once and hands a `StepReport` to the callbacks, which print, save or log; the
only file it writes itself is a checkpoint, when it is given a `RunCheckpoints`. Between reports the device is
never waited on.

A KeyboardInterrupt (Ctrl-C, or one raised by the caller's signal handler) between or during steps becomes an
`Interrupted` error that carries the current result; a non-finite loss or image becomes a `DivergedError`
that carries the last finite one. Neither is ever written into a checkpoint.
"""

import dataclasses
import gc
import time
from typing import Callable, NamedTuple, Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_style import losses
from tf_style.checkpoint import RunCheckpoints, run_fingerprint
from tf_style.config import StyleConfig, scaled_size
from tf_style.errors import DivergedError, Interrupted
from tf_style.features import FeatureExtractor

# Newton-Schulz iterations for the per-step covariance square root of the Wasserstein style loss.
_STEP_SQRT_ITERATIONS = 8


@dataclasses.dataclass(frozen=True)
class StepReport:
    """What callbacks see of one image of the run every few steps.

    A batch of images gives one report per image at each reporting step, in batch order.

    Attributes:
        step: steps done so far over all scales (1-based).
        num_steps: steps in the whole run.
        losses: {"total", "content", "style", "tv"} -> float, weighted, at this step.
        image: the current result (the moving average when averaging is on), float32 [H, W, 3] in [0, 255].
        elapsed_seconds: wall time since the first step started (tracing included).
        scale_index: which scale of a coarse-to-fine run (0-based).
        num_scales: how many scales the run has.
        index: which image of the caller's input this is (its position in the batch, unless the caller
            numbered them otherwise).
    """

    step: int
    num_steps: int
    losses: dict
    image: np.ndarray
    elapsed_seconds: float
    scale_index: int = 0
    num_scales: int = 1
    index: int = 0


Callback = Callable[[StepReport], None]


class StyleStatistics(NamedTuple):
    """The style statistics one image must match, blended over its style images.

    Attributes:
        grams: {layer: float32 [1, C, C]}.
        means: {layer: float32 [1, C]} (Wasserstein loss only, else empty).
        covariance_roots: {layer: float32 [1, C, C]} (Wasserstein loss only, else empty).
    """

    grams: dict
    means: dict
    covariance_roots: dict


class StyleTargets(NamedTuple):
    """What a batch of results must match, computed once per scale before the loop.

    A NamedTuple so that `tf.function` takes it as one nested argument.

    Attributes:
        content_features: {layer: float32 [B, h, w, C]} of the content images.
        style_grams: {layer: float32 [B, C, C]}, each image's blended over its style images.
        style_means: {layer: float32 [B, C]} (Wasserstein loss only, else empty).
        style_covariance_roots: {layer: float32 [B, C, C]} (Wasserstein loss only, else empty).
    """

    content_features: dict
    style_grams: dict
    style_means: dict
    style_covariance_roots: dict


def style_statistics(extractor: FeatureExtractor, style_images: Sequence[np.ndarray], config: StyleConfig,
                     blend_weights: Sequence[float] = None) -> StyleStatistics:
    """Blended style statistics of float32 [H, W, 3] images in [0, 255].

    Args:
        blend_weights: the weight of each style image (normalized here); None for equal weights.
    """
    if isinstance(style_images, np.ndarray) and style_images.ndim == 3:
        style_images = [style_images]
    blend_weights = blend_weights or [1.0] * len(style_images)
    total_weight = float(sum(blend_weights))
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
    return StyleStatistics(grams, means, roots)


def batch_targets(extractor: FeatureExtractor, content_images: np.ndarray,
                  statistics: Sequence[StyleStatistics], config: StyleConfig) -> StyleTargets:
    """The targets of a batch: content features of float32 [B, H, W, 3] images and each image's statistics."""
    content_features = extractor(content_images)

    def stacked(field: str) -> dict:
        layers = getattr(statistics[0], field)
        return {name: tf.concat([getattr(each, field)[name] for each in statistics], axis=0) for name in layers}

    return StyleTargets(
        content_features={name: content_features[name] for name in config.content_layers},
        style_grams=stacked("grams"), style_means=stacked("means"),
        style_covariance_roots=stacked("covariance_roots"))


def compute_targets(extractor: FeatureExtractor, content_image: np.ndarray, style_images: Sequence[np.ndarray],
                    config: StyleConfig, blend_weights: Sequence[float] = None) -> StyleTargets:
    """The targets of one float32 [H, W, 3] content image and its style images (a batch of one)."""
    return batch_targets(extractor, content_image[None],
                         [style_statistics(extractor, style_images, config, blend_weights)], config)


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
    """Adam on a `tf.Variable` batch of images of one size, with a train step traced once for that size.

    The images of a batch do not interact: the loss is a sum of per-image losses and Adam works per pixel, so
    each image follows the path it would follow alone, while one step keeps both cores busy for all of them.

    The output is an exponential moving average of the iterates (bias-corrected, as Adam's moments are):
    Adam keeps jittering pixels by about the learning rate, and the average removes that noise.

    Args:
        extractor: the VGG16 feature extractor.
        targets: content features and style statistics, batch B.
        initial_images: float32 [B, H, W, 3] in [0, 255], the start of the optimization.
        config: the options (weights, learning rate, averaging, ...).
        jit_compile: compile the train step with XLA.
        indices: the `index` of each image in the reports; default 0 .. B-1.
    """

    def __init__(self, extractor: FeatureExtractor, targets: StyleTargets, initial_images: np.ndarray,
                 config: StyleConfig, jit_compile: bool = False, indices: Sequence[int] = None):
        self.extractor = extractor
        self.targets = targets
        self.config = config
        self.indices = list(range(len(initial_images))) if indices is None else list(indices)
        self.image = tf.Variable(initial_images, dtype=tf.float32, name="image")
        self.average = tf.Variable(tf.zeros_like(self.image), name="image_average")
        self.steps_done = tf.Variable(0, dtype=tf.int64, trainable=False, name="steps_done")
        self.optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate, beta_2=0.99)
        if extractor.compute_dtype == "float16":
            # float16 gradients underflow without loss scaling.
            self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
        # Building the optimizer's slots now keeps the first call from tracing the step twice.
        self.optimizer.build([self.image])
        self.train_step = tf.function(self._train_step, jit_compile=jit_compile)

    def restart(self, targets: StyleTargets, initial_images: np.ndarray, indices: Sequence[int] = None) -> None:
        """Starts over on other images of the same shape, as a new Optimization would, but without tracing
        the train step again (a trace takes seconds; a batch run meets each shape many times)."""
        self.targets = targets
        self.indices = list(range(len(initial_images))) if indices is None else list(indices)
        self.image.assign(initial_images)
        self.average.assign(tf.zeros_like(self.image))
        self.steps_done.assign(0)
        self.optimizer.iterations.assign(0)
        for moment in self._adam_moments():
            moment.assign(tf.zeros_like(moment))

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
        self.steps_done.assign_add(1)
        return terms

    def _adam_moments(self) -> tuple:
        """Adam's first and second moment variables of the image, float32 [B, H, W, 3] each.

        Keras 3's Adam keeps them in private lists (`_momentums`, `_velocities`), one entry per variable;
        under loss scaling they belong to the wrapped optimizer.
        """
        optimizer = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        return optimizer._momentums[0], optimizer._velocities[0]

    def adam_state(self) -> tuple:
        """Adam's first moment, second moment (float32 [B, H, W, 3] each) and step count, for `warm_start`."""
        first_moment, second_moment = self._adam_moments()
        return tf.identity(first_moment), tf.identity(second_moment), tf.identity(self.optimizer.iterations)

    def warm_start(self, adam_state: tuple) -> None:
        """Continues Adam from the `adam_state()` of the previous, smaller scale, upsampled to this size.

        A fresh Adam moves every pixel by about the learning rate on its first steps whatever the gradient,
        which adds noise at the start of each scale. Carrying the moments (and the step count, so that the
        bias corrections stay small) continues the optimization instead. All loss terms are means over
        positions, so a pixel's gradient shrinks with the number of pixels: the first moment is scaled by the
        ratio of pixel counts and the second by its square, which keeps Adam's step size.
        """
        first_moment, second_moment, iterations = adam_state
        height, width = self.image.shape[1:3]
        ratio = (first_moment.shape[1] * first_moment.shape[2]) / (height * width)
        first_moment_here, second_moment_here = self._adam_moments()
        first_moment_here.assign(ratio * tf.image.resize(first_moment, (height, width), method="bicubic"))
        # Bilinear, and clipped at 0: the second moment must stay non-negative.
        second_moment_here.assign(
            ratio ** 2 * tf.nn.relu(tf.image.resize(second_moment, (height, width), method="bilinear")))
        self.optimizer.iterations.assign(iterations)

    def state(self) -> dict:
        """The variables that a checkpoint must hold to continue this optimization exactly."""
        return {"image": self.image, "image_average": self.average, "steps_done": self.steps_done,
                "optimizer": self.optimizer}

    def completed_steps(self) -> int:
        """Steps done so far (restored ones included)."""
        return int(self.steps_done.numpy())

    def result(self) -> np.ndarray:
        """The output images, [B, H, W, 3]: the bias-corrected moving average, or the last iterate."""
        decay = self.config.average_decay
        steps_done = self.completed_steps()
        if decay == 0.0 or steps_done == 0:
            return self.image.numpy()
        correction = 1.0 - decay ** steps_done
        return np.clip(self.average.numpy() / correction, 0.0, 255.0)

    def run(self, num_steps: int, callbacks: Sequence[Callback] = (), save_every: int = 0,
            progress_every: int = 10, first_step: int = 1, total_steps: int = None,
            scale_index: int = 0, num_scales: int = 1, start_time: float = None,
            checkpoints: RunCheckpoints = None) -> np.ndarray:
        """Runs `num_steps` more steps; returns the results, float32 [B, H, W, 3].

        `first_step`, `total_steps`, `scale_index`, `num_scales` and `start_time` place this run inside a
        coarse-to-fine run, for the reports.

        Args:
            checkpoints: if given, tracking this optimization's `state()`; saved every `checkpoints.every`
                steps, at the last step and on an interrupt.

        Raises:
            DivergedError: a loss or an image became non-finite; `error.image` is the last finite batch of
                results (None if there was none).
            Interrupted: a KeyboardInterrupt arrived; `error.image` is the current batch of results (None if
                no step had finished).
        """
        start_time = time.perf_counter() if start_time is None else start_time
        total_steps = total_steps or num_steps
        last_step = first_step + num_steps - 1
        # Steps done before (restored from a checkpoint) count as finished: their result is finite.
        steps_before = self.completed_steps()
        last_finite_image = self.result() if steps_before else None
        try:
            for step in range(first_step, last_step + 1):
                step_losses = self.train_step(self.targets)
                is_last = step == last_step
                checkpoint_now = checkpoints is not None and (is_last or step % checkpoints.every == 0)
                if not (is_last or checkpoint_now or step % progress_every == 0
                        or (save_every and step % save_every == 0)):
                    continue
                losses_now = {name: value.numpy() for name, value in step_losses.items()}
                results = self.result()
                losses_finite = all(np.isfinite(value).all() for value in losses_now.values())
                if not losses_finite or not self._is_finite(results):
                    raise _diverged(step, f"loss {np.max(losses_now['total']):.4g}", last_finite_image)
                last_finite_image = results
                if checkpoint_now:
                    checkpoints.save(step)
                elapsed = time.perf_counter() - start_time
                for position, index in enumerate(self.indices):
                    report = StepReport(step, total_steps,
                                        {name: float(value[position]) for name, value in losses_now.items()},
                                        results[position], elapsed, scale_index, num_scales, index)
                    for callback in callbacks:
                        callback(report)
        except KeyboardInterrupt:
            step = first_step - 1 + self.completed_steps() - steps_before
            raise self._interrupted(step, total_steps, last_finite_image, checkpoints) from None
        return last_finite_image

    def _is_finite(self, result: np.ndarray) -> bool:
        """Whether the result and the iterate are finite: only then may they be reported or checkpointed."""
        return bool(np.isfinite(result).all() and tf.reduce_all(tf.math.is_finite(self.image)))

    def _interrupted(self, step: int, total_steps: int, last_finite_image, checkpoints):
        """The error to raise for a KeyboardInterrupt at `step`: Interrupted with the current result, saved."""
        if not self.completed_steps():
            return Interrupted(_interrupted_message(step, total_steps), step, None)
        image = self.result()
        if not self._is_finite(image):
            return _diverged(step, "non-finite image", last_finite_image)
        if checkpoints is not None:
            checkpoints.save(step)
        return Interrupted(_interrupted_message(step, total_steps), step, image)


def _interrupted_message(step: int, total_steps: int) -> str:
    return f"interrupted at step {step} of {total_steps}" if step else "interrupted before the first step"


def _diverged(step: int, what: str, last_finite_image) -> DivergedError:
    return DivergedError(f"the optimization diverged at step {step} ({what}); use a smaller --learning_rate "
                         "(or smaller loss weights)", step=step, image=last_finite_image)


def stylize_coarse_to_fine(extractor: FeatureExtractor, content_images: np.ndarray,
                           style_images: Sequence[Sequence[np.ndarray]], start_images: np.ndarray,
                           config: StyleConfig, callbacks: Sequence[Callback] = (), jit_compile: bool = False,
                           indices: Sequence[int] = None, style_keys: Sequence = None,
                           style_cache: dict = None, optimization_cache: dict = None) -> np.ndarray:
    """Optimizes a batch at each of `config.scale_sizes()`, starting each scale from the last one's results.

    Small scales are cheap and give the result the style's large structures (a swirl spanning the sky);
    each larger scale then only has to add detail. With one scale this is plain Gatys.

    Args:
        content_images: float32 [B, H, W, 3] at the output size.
        style_images: for each content image, its style images, float32 [h, w, 3] each, as large as they
            will be seen at the final scale.
        start_images: float32 [B, H, W, 3], the starts of the first scale (resized to it), and where each later
            scale takes the detail it adds to the upsampled result (`config.scale_detail`).
        indices: the `index` of each image in the reports; default 0 .. B-1.
        style_keys: a hashable name for each image's styles (and blend), under which their statistics at
            each scale are kept in `style_cache`; None computes them for every call.
        style_cache: {(style key, long side): StyleStatistics}, filled here; share it between calls that
            reuse styles. Statistics depend on the options too: share it only between calls with one config.
        optimization_cache: {(B, H, W): Optimization}, filled here: calls that share it trace the train step
            once per shape. The same caveat holds; and it keeps each shape's variables alive.

    Returns:
        float32 [B, H, W, 3] in [0, 255].

    Raises:
        DivergedError, Interrupted: as `Optimization.run`, with `error.image` the batch at the output size.
    """
    height, width = content_images.shape[1:3]
    sizes = config.scale_sizes()
    total_steps = sum(config.steps_at_scale(index) for index in range(len(sizes)))
    images = start_images
    finished_images = None  # the results of the last finished scale, for an early stop in the next
    first_step = 1
    start_time = time.perf_counter()
    scale_inputs = _ScaleInputs(extractor, content_images, style_images, start_images, config, style_keys,
                                style_cache, optimization_cache)
    try:
        checkpoints, resume, adam_state = None, None, None
        if config.checkpoint_dir:
            if len(content_images) != 1:
                raise ValueError(f"checkpoints hold one image's run; got a batch of {len(content_images)}")
            checkpoints = RunCheckpoints(config.checkpoint_dir, run_fingerprint(
                config, content_images[0], style_images[0], start_images[0], extractor.compute_dtype,
                jit_compile), config.checkpoint_every)
            resume = checkpoints.latest()
        for scale_index, long_side in enumerate(sizes):
            num_steps = config.steps_at_scale(scale_index)
            # Resuming skips the scales finished before the checkpoint; its own scale starts from it.
            if resume is None or scale_index >= resume.scale_index:
                optimization = scale_inputs.optimization(images, long_side, jit_compile, indices)
                if adam_state is not None:
                    optimization.warm_start(adam_state)
                if checkpoints is not None:
                    checkpoints.track(optimization.state(), scale_index)
                    if resume is not None and scale_index == resume.scale_index:
                        checkpoints.restore(resume)
                done = optimization.completed_steps()
                images = optimization.run(num_steps - done, callbacks, save_every=config.save_every,
                                          progress_every=config.progress_every, first_step=first_step + done,
                                          total_steps=total_steps, scale_index=scale_index,
                                          num_scales=len(sizes), start_time=start_time, checkpoints=checkpoints)
                finished_images = images
                adam_state = optimization.adam_state() if config.warm_start_optimizer else None
                # The traced step keeps the optimization in a reference cycle: free its tensors now, not
                # while the next, larger scale is using memory.
                del optimization
                gc.collect()
            first_step += num_steps
    except (DivergedError, Interrupted) as error:
        # The caller gets images of the output size: this scale's, or the last finished scale's.
        error.image = _at_size(finished_images if error.image is None else error.image, height, width)
        raise
    except KeyboardInterrupt:
        raise Interrupted(_interrupted_message(first_step - 1, total_steps), first_step - 1,
                          _at_size(finished_images, height, width)) from None
    return images


class _ScaleInputs:
    """The targets and start images of each scale of a coarse-to-fine run, style statistics cached."""

    def __init__(self, extractor: FeatureExtractor, content_images: np.ndarray,
                 style_images: Sequence[Sequence[np.ndarray]], start_images: np.ndarray, config: StyleConfig,
                 style_keys, style_cache, optimization_cache):
        self.extractor = extractor
        self.content_images = content_images
        self.style_images = style_images
        self.start_images = start_images
        self.config = config
        self.style_keys = style_keys if style_keys is not None else [object() for _ in style_images]
        self.style_cache = style_cache if style_cache is not None else {}
        self.optimization_cache = optimization_cache

    def optimization(self, images: np.ndarray, long_side: int, jit_compile: bool,
                     indices: Sequence[int]) -> Optimization:
        """The optimization at one scale, starting from `images` (the last scale's results) resized to it."""
        height, width = scaled_size(*self.content_images.shape[1:3], long_side)
        statistics = [self._style_statistics(key, styles, long_side)
                      for key, styles in zip(self.style_keys, self.style_images)]
        targets = batch_targets(self.extractor, _at_size(self.content_images, height, width), statistics,
                                self.config)
        if self.config.scale_detail and images.shape[1] < height:
            start = upsample_with_detail(images, self.start_images, height, width, self.config.scale_detail)
        else:
            start = _at_size(images, height, width)
        if self.optimization_cache is None:
            return Optimization(self.extractor, targets, start, self.config, jit_compile=jit_compile,
                                indices=indices)
        optimization = self.optimization_cache.pop(start.shape[:3], None)
        if optimization is None:
            optimization = Optimization(self.extractor, targets, start, self.config, jit_compile=jit_compile,
                                        indices=indices)
        else:
            optimization.restart(targets, start, indices)
        # Most recent last. A batch run does one image size after another, in full batches and perhaps one
        # smaller last batch: two shapes per scale are all that can come again.
        self.optimization_cache[start.shape[:3]] = optimization
        while len(self.optimization_cache) > 2 * len(self.config.scale_sizes()):
            del self.optimization_cache[next(iter(self.optimization_cache))]
        return optimization

    def _style_statistics(self, key, styles: Sequence[np.ndarray], long_side: int) -> StyleStatistics:
        if (key, long_side) not in self.style_cache:
            scale_factor = long_side / self.config.size
            scaled_styles = [resize_image(style, *scaled_size(*style.shape[:2],
                                                               max(1, round(max(style.shape[:2]) * scale_factor))))
                             for style in styles]
            self.style_cache[key, long_side] = style_statistics(self.extractor, scaled_styles, self.config,
                                                                self.config.style_blend_weights)
        return self.style_cache[key, long_side]


def upsample_with_detail(images: np.ndarray, detail_source: np.ndarray, height: int, width: int,
                         amount: float = 1.0) -> np.ndarray:
    """`images` upsampled to (height, width), plus `amount` times the detail that `detail_source` has at that
    size and loses at the size of `images`: [B, h, w, 3], [B, H', W', 3] -> [B, height, width, 3] in [0, 255].

    An upsampled result is smooth at the new scale's finest frequencies, and in smooth regions the style
    gradient grows the pattern of the network's pixel grid (a woven, maze-like texture, measured on the
    bundled pair) instead of strokes. The start image's own detail (the photo's, by default) seeds them.
    """
    detail = (_at_size(detail_source, height, width)
              - resize_image(_at_size(detail_source, *images.shape[1:3]), height, width))
    return np.clip(resize_image(images, height, width) + amount * detail, 0.0, 255.0)


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Antialiased Lanczos resize of float32 [H, W, 3] or [B, H, W, 3] images, clipped to [0, 255]."""
    if image.shape[-3:-1] == (height, width):
        return image
    resized = tf.image.resize(image, (height, width), method="lanczos3", antialias=True)
    return np.clip(resized.numpy(), 0.0, 255.0).astype(np.float32)


def _at_size(images, height: int, width: int):
    return None if images is None else resize_image(images, height, width)
