"""What an optimization must match: style statistics of the style images, and the targets of a batch's content
and style terms (`tf_style.objective.terms`).

With region masks (`config.content_masks`) each style is not blended but paints its own region: its statistics
are kept apart (`region_statistics`), and the loss compares each region's guided Gram matrices with its style's
(`losses.guided_style_loss`). The content loss covers the whole image, so a pixel in no region keeps the photo's
look: it is pulled by the content and total-variation losses only.

Computed once per scale, before the loop (`tf_style.optimization.coarse_to_fine`); the traced train step
(`tf_style.optimization.level`) compares the image with them at every step.
"""

import dataclasses
from typing import NamedTuple, Optional, Sequence

import numpy as np
import tensorflow as tf

from tf_style.config import StyleConfig
from tf_style.network.features import FeatureExtractor
from tf_style.objective import losses, masks
from tf_style.tiling import tiles


class StyleStatistics(NamedTuple):
    """The style statistics one image must match, blended over its style images.

    Attributes:
        grams: {layer: float32 [1, C, C]}.
        means: {layer: float32 [1, C]} (Wasserstein loss only, else empty).
        covariance_roots: {layer: float32 [1, C, C]} (Wasserstein loss only, else empty).
        region_present: with region masks, {layer: float32 [1, R]}: 1 where the style of region r has
            statistics at that layer (a style mask can leave none at a deep layer), else 0; then `grams` are
            {layer: [1, R, C, C]}, one per region. Empty without region masks.
        palette: float32 [1, K, Q], the style's colours (`losses.palette_quantiles`); None with region masks.
    """

    grams: dict
    means: dict
    covariance_roots: dict
    region_present: dict = {}
    palette: Optional[tf.Tensor] = None


def style_statistics(extractor: FeatureExtractor, style_images: Sequence[np.ndarray], config: StyleConfig,
                     blend_weights: Sequence[float] = None, tile_size: int = 0) -> StyleStatistics:
    """Blended style statistics of float32 [H, W, 3] images in [0, 255].

    Args:
        blend_weights: the weight of each style image (normalized here); None for equal weights.
        tile_size: a style image with a side longer than this goes through the network in tiles
            (`tf_style.tiling.tiles`), with only one tile's activations in memory; 0: never.
    """
    if isinstance(style_images, np.ndarray) and style_images.ndim == 3:
        style_images = [style_images]
    blend_weights = blend_weights or [1.0] * len(style_images)
    total_weight = float(sum(blend_weights))
    weights = [weight / total_weight for weight in blend_weights]
    wasserstein = config.style_loss == "wasserstein"
    # Per image: {layer: (Gram, mean, covariance)}, the last two for the Wasserstein loss only.
    style_moments = []
    for image in style_images:
        if tile_size and max(image.shape[:2]) > tile_size:
            grid = tiles.tile_grid(*image.shape[:2], tile_size, tiles.margin_for(config.network, config.style_layers))
            moments = tiled_moments(extractor, image[None], grid, config.style_layers)
            style_moments.append({name: (each.gram(), each.mean(), each.covariance()) if wasserstein
                                  else (each.gram(), None, None) for name, each in moments.items()})
        else:
            features = extractor(image[None])
            style_moments.append({name: _moments(features[name], wasserstein) for name in config.style_layers})
    grams, means, roots = {}, {}, {}
    for name in config.style_layers:
        layer_moments = [moments[name] for moments in style_moments]
        # Blending second moments is what mixing the styles' pixels would do.
        grams[name] = tf.add_n([w * gram for w, (gram, _, _) in zip(weights, layer_moments)])
        if wasserstein:
            means[name] = tf.add_n([w * mean for w, (_, mean, _) in zip(weights, layer_moments)])
            # The mixture's covariance: the blended covariances plus the spread of the means around their
            # blend. Written this way, not as Gram - mean mean^T, it stays positive semi-definite in float32.
            covariance = tf.add_n([
                w * (cov + (m - means[name])[:, :, None] * (m - means[name])[:, None, :])
                for w, (_, m, cov) in zip(weights, layer_moments)])
            roots[name] = losses.sqrtm_eigh(covariance)
    # The blend of palettes that are quantile functions is their weighted mean: in one dimension, the
    # Wasserstein barycentre of the styles' colours.
    palette = tf.add_n([w * losses.palette_quantiles(image[None]) for w, image in zip(weights, style_images)])
    return StyleStatistics(grams, means, roots, palette=palette)


def region_statistics(extractor: FeatureExtractor, style_images: Sequence[np.ndarray],
                      style_masks: Sequence[Optional[np.ndarray]], config: StyleConfig) -> StyleStatistics:
    """The style statistics of a run with region masks: each style's own Gram matrices, one region each.

    Args:
        style_images: float32 [H, W, 3] in [0, 255], the style of each region.
        style_masks: for each style, float32 [H, W] in [0, 1] of its size, the part of it whose statistics its
            region takes (seen at each layer as the content masks are, `config.mask_mode`); None: all of it.
    """
    grams, present = {name: [] for name in config.style_layers}, {name: [] for name in config.style_layers}
    for image, style_mask in zip(style_images, style_masks):
        features = extractor(image[None])
        seen = (masks.layer_masks(style_mask[None], config.network, config.style_layers, config.mask_mode)
                if style_mask is not None else None)
        for name in config.style_layers:
            if seen is None:
                grams[name].append(losses.gram_matrix(features[name]))
                present[name].append(1.0)
            else:
                grams[name].append(losses.guided_gram_matrices(features[name], seen[name][None])[:, 0])
                present[name].append(float(tf.reduce_any(seen[name] > 0)))
    return StyleStatistics(grams={name: tf.stack(grams[name], axis=1) for name in config.style_layers}, means={},
                           covariance_roots={},
                           region_present={name: tf.constant([present[name]]) for name in config.style_layers})


def _moments(features: tf.Tensor, with_mean_and_covariance: bool) -> tuple:
    """(Gram, mean, covariance) of [1, H, W, C] features; the last two None unless asked for."""
    if not with_mean_and_covariance:
        return losses.gram_matrix(features), None, None
    return losses.gram_matrix(features), losses.feature_mean(features), losses.feature_covariance(features)


def batch_targets(extractor: FeatureExtractor, content_images: np.ndarray,
                  statistics: Sequence[StyleStatistics], config: StyleConfig,
                  grid: tiles.TileGrid = None, content_masks: Optional[np.ndarray] = None) -> dict:
    """The targets of a batch's content, style and palette terms (`tf_style.objective.terms`): {"content": {layer:
    float32 [B, h, w, C]}, the features of float32 [B, H, W, 3] images; "style": each image's statistics,
    stacked; "palette": each image's style's palette, [B, K, Q], without region masks}.

    Args:
        grid: compute the content features tile by tile (`tf_style.tiling.tiles`); None: the whole image at once.
        content_masks: float32 [R, H, W] in [0, 1], the regions of every image of the batch, one per style
            (the statistics are then `region_statistics`); None: no regions.
    """
    if grid is None:
        content_features = extractor(content_images)
    else:
        content_features = tiles.tiled_features(extractor, content_images, grid, config.content_layers)

    def stacked(field: str) -> dict:
        layers = getattr(statistics[0], field)
        return {name: tf.concat([getattr(each, field)[name] for each in statistics], axis=0) for name in layers}

    targets = {"content": {name: content_features[name] for name in config.content_layers}}
    if content_masks is None:
        targets["style"] = ({"means": stacked("means"), "covariance_roots": stacked("covariance_roots")}
                            if config.style_loss == "wasserstein" else {"grams": stacked("grams")})
        targets["palette"] = tf.concat([each.palette for each in statistics], axis=0)
    else:
        present = stacked("region_present")
        seen = masks.layer_masks(content_masks, config.network, config.style_layers, config.mask_mode)
        targets["style"] = {"grams": stacked("grams"), "masks": {
            name: seen[name][None] * present[name][:, :, None, None] for name in config.style_layers}}
    return targets


def face_targets(content_targets: dict, face_masks) -> dict:
    """The targets of the faces' term (`terms.FaceTerm`): the content targets {layer: [B, h, w, C]}, and
    each image's face mask float32 [B, H, W] (an array or a tensor) averaged down to each layer's positions,
    [B, h, w, 1]."""
    masks = tf.convert_to_tensor(face_masks, tf.float32)[..., tf.newaxis]
    return {"features": dict(content_targets),
            "masks": {name: tf.image.resize(masks, tf.shape(features)[1:3], method="area")
                      for name, features in content_targets.items()}}


def compute_targets(extractor: FeatureExtractor, content_image: np.ndarray, style_images: Sequence[np.ndarray],
                    config: StyleConfig, blend_weights: Sequence[float] = None) -> dict:
    """The targets of one float32 [H, W, 3] content image and its style images (a batch of one)."""
    return batch_targets(extractor, content_image[None],
                         [style_statistics(extractor, style_images, config, blend_weights)], config)


@dataclasses.dataclass(frozen=True)
class Moments:
    """Sums over the positions of one layer, added up over tiles.

    Attributes:
        count: the number of positions.
        gram_sum: float32 [B, C, C], the sum of f f^T.
        feature_sum: float32 [B, C], the sum of f.
    """

    count: int
    gram_sum: tf.Tensor
    feature_sum: tf.Tensor

    def gram(self) -> tf.Tensor:
        return self.gram_sum / self.count

    def mean(self) -> tf.Tensor:
        return self.feature_sum / self.count

    def covariance(self) -> tf.Tensor:
        mean = self.mean()
        return self.gram() - mean[:, :, None] * mean[:, None, :]


def tiled_moments(extractor, images: np.ndarray, grid: tiles.TileGrid, layer_names: Sequence[str]) -> dict:
    """{layer: Moments} of whole images, computed tile by tile (the style images of a tiled run)."""
    sums = {}
    for tile in grid.tiles:
        features = extractor(tiles.padded_pixels(tile, images))
        for name in layer_names:
            inner = tiles.crop(features[name], tile.inner_at(name))
            count = int(inner.shape[1] * inner.shape[2])
            gram_sum, feature_sum = losses.gram_matrix(inner) * count, tf.reduce_sum(inner, axis=[1, 2])
            if name in sums:
                gram_sum, feature_sum = sums[name][0] + gram_sum, sums[name][1] + feature_sum
                count += sums[name][2]
            sums[name] = (gram_sum, feature_sum, count)
    return {name: Moments(count, gram_sum, feature_sum) for name, (gram_sum, feature_sum, count) in sums.items()}
