"""What an optimization must match: style statistics of the style images and the targets of a batch, and
the weighted loss of a batch of images against them.

Computed once per scale, before the loop (`tf_style.schedule`); the traced train step (`tf_style.optimize`)
calls `weighted_losses` at every step.
"""

from typing import NamedTuple, Sequence

import numpy as np
import tensorflow as tf

from tf_style import losses
from tf_style.config import StyleConfig
from tf_style.features import FeatureExtractor

# Newton-Schulz iterations for the per-step covariance square root of the Wasserstein style loss.
_STEP_SQRT_ITERATIONS = 8


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
