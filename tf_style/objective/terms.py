"""The objective of a stylization: its loss terms as objects, and the one place that weighs and adds them.

A term has a name (its key in the reports, the checkpoints' fingerprints and the served outputs), a weight,
and a loss of the network's features and the image against its targets, per image: [B]. The targets of a run
are a dict {term name: that term's targets}, made once per scale (`tf_style.objective.targets`, or by a term that brings
its own, as the video's temporal term does) and passed to the traced step as one nested argument.

A feature term whose loss is a function of sums over each layer's positions (content, Gram style, Wasserstein
style) also says how to form those sums on part of the image and its loss from them: that is what the tiled
step (`tf_style.tiling.tiles`) needs to compute the same loss tile by tile. A pixel term reads the image only (total
variation, temporal consistency); the tiled step computes it on the whole image, which needs no network.
"""

from typing import Optional, Sequence

import tensorflow as tf

from tf_style.config import StyleConfig
from tf_style.objective import losses


class Term:
    """A loss term. Subclasses set `name` and `layers` and define `loss`.

    Args:
        weight: what the term is multiplied by in the total.

    Attributes:
        name: the term's key in the losses, the reports and the targets.
        layers: the network layers whose features the loss reads; empty for a term of the pixels alone.
    """

    name = ""
    layers = ()

    def __init__(self, weight: float):
        self.weight = weight

    def loss(self, features: dict, images: tf.Tensor, targets) -> tf.Tensor:
        """The unweighted loss of each image: features {layer: [B, h, w, C]}, images [B, H, W, 3] -> [B]."""
        raise NotImplementedError

    def targets_at(self, targets, height: int, width: int):
        """Targets that the term's caller brings at the output size (see `coarse_to_fine.Batch`), at a scale of
        height x width. The content and style terms' targets are made at each scale instead
        (`tf_style.objective.targets`); a term that brings its own resizes them here."""
        raise NotImplementedError(f"the {self.name} term makes no targets of its own")

    @property
    def key(self) -> tuple:
        """What the term computes, hashable: its class and its settings. Equal keys, equal traced steps."""
        return (type(self).__qualname__, tuple(sorted((name, repr(value)) for name, value in vars(self).items())))

    @property
    def tiles_exactly(self) -> bool:
        """Whether the tiled step can compute this term: a pixel term, or a feature term with position sums."""
        return not self.layers or type(self).tile_sums is not Term.tile_sums

    def tile_targets(self, targets, crop_at) -> dict:
        """The part of the targets one tile's sums compare with; `crop_at(layer, tensor)` crops a full-size
        feature map to the tile's inner region at that layer. {} for targets that are not per position."""
        return {}

    def tile_sums(self, inner_features: dict, tile_targets: dict) -> dict:
        """The sums over one tile's inner positions that `loss_of_sums` needs: {key: tensor}."""
        raise NotImplementedError(f"the {self.name} term has no tiled form")

    def loss_of_sums(self, sums: dict, targets, counts: dict) -> tf.Tensor:
        """The unweighted loss [B] from `tile_sums` added over all tiles; `counts` {layer: positions in the
        whole image at that layer}."""
        raise NotImplementedError(f"the {self.name} term has no tiled form")


class ContentTerm(Term):
    """The photo's features at `layers`: the target-normalized squared error (`losses.content_loss`).

    Targets: {layer: float32 [B, h, w, C]}, the content images' features.
    """

    name = "content"

    def __init__(self, weight: float, layers: Sequence[str]):
        super().__init__(weight)
        self.layers = tuple(layers)

    def loss(self, features, images, targets):
        return losses.content_loss(features, targets)

    def tile_targets(self, targets, crop_at):
        return {name: crop_at(name, target) for name, target in targets.items()}

    def tile_sums(self, inner_features, tile_targets):
        return {name: losses.squared_error_sum(inner_features[name], target)
                for name, target in tile_targets.items()}

    def loss_of_sums(self, sums, targets, counts):
        absolute_sums = {name: losses.absolute_sum(target) for name, target in targets.items()}
        return losses.content_loss_of_sums(sums, absolute_sums)


class FaceTerm(Term):
    """The photo's features inside its faces (`tf_style.objective.faces`): the content loss again, each position
    weighted by the faces' mask and normalized by the faces' own features (`losses.masked_content_loss`), so that a
    small face pulls as hard as a large one.

    Targets: {"features": {layer: float32 [B, h, w, C]}, the content images' features; "masks": {layer: float32
    [B, h, w, 1]}, each image's faces at that layer's size (0 everywhere for an image without faces)}.
    """

    name = "faces"

    def __init__(self, weight: float, layers: Sequence[str]):
        super().__init__(weight)
        self.layers = tuple(layers)

    def loss(self, features, images, targets):
        return losses.masked_content_loss(features, targets["features"], targets["masks"])

    def tile_targets(self, targets, crop_at):
        return {part: {name: crop_at(name, target) for name, target in targets[part].items()}
                for part in ("features", "masks")}

    def tile_sums(self, inner_features, tile_targets):
        return {name: losses.masked_squared_error_sum(inner_features[name], target, tile_targets["masks"][name])
                for name, target in tile_targets["features"].items()}

    def loss_of_sums(self, sums, targets, counts):
        absolute_sums = {name: losses.masked_absolute_sum(target, targets["masks"][name])
                         for name, target in targets["features"].items()}
        return losses.content_loss_of_sums(sums, absolute_sums)


class _StyleTerm(Term):
    """A style term over `layers`, each weighted by `layer_weights` (`config.balanced_style_layer_weights`)."""

    name = "style"

    def __init__(self, weight: float, layers: Sequence[str], layer_weights: Sequence[float]):
        super().__init__(weight)
        self.layers = tuple(layers)
        self.layer_weights = dict(zip(self.layers, layer_weights))


class GramStyleTerm(_StyleTerm):
    """Gatys' style loss: the normalized error of each layer's Gram matrix (`losses.style_loss`).

    Targets: {"grams": {layer: float32 [B, C, C]}}.
    """

    def loss(self, features, images, targets):
        return losses.style_loss(features, targets["grams"], self.layer_weights)

    def tile_sums(self, inner_features, tile_targets):
        return {name: losses.gram_matrix(inner_features[name]) * _positions(inner_features[name])
                for name in self.layers}

    def loss_of_sums(self, sums, targets, counts):
        return losses.style_loss_of_grams({name: sums[name] / counts[name] for name in self.layers},
                                          targets["grams"], self.layer_weights)


class WassersteinStyleTerm(_StyleTerm):
    """The 2-Wasserstein distance of Gaussian fits of each layer's features (`losses.wasserstein_style_loss`).

    Targets: {"means": {layer: float32 [B, C]}, "covariance_roots": {layer: float32 [B, C, C]}}.
    """

    def loss(self, features, images, targets):
        return losses.wasserstein_style_loss(features, targets["means"], targets["covariance_roots"],
                                             self.layer_weights, losses.STEP_SQRT_ITERATIONS)

    def tile_sums(self, inner_features, tile_targets):
        sums = {}
        for name in self.layers:
            inner = inner_features[name]
            sums[f"gram/{name}"] = losses.gram_matrix(inner) * _positions(inner)
            sums[f"features/{name}"] = tf.reduce_sum(tf.cast(inner, tf.float32), axis=[1, 2])
        return sums

    def loss_of_sums(self, sums, targets, counts):
        means, covariances = {}, {}
        for name in self.layers:
            means[name] = sums[f"features/{name}"] / counts[name]
            # The covariance from the second moment and the mean: E[f f^T] - m m^T.
            covariances[name] = sums[f"gram/{name}"] / counts[name] - means[name][:, :, None] * means[name][:, None, :]
        return losses.wasserstein_style_loss_of_moments(means, covariances, targets["means"],
                                                        targets["covariance_roots"], self.layer_weights,
                                                        losses.STEP_SQRT_ITERATIONS)


class GuidedStyleTerm(_StyleTerm):
    """Region masks: each region's guided Gram matrices against its own style's (`losses.guided_style_loss`).

    Targets: {"grams": {layer: float32 [B, R, C, C]}, "masks": {layer: float32 [B, R, h, w]}}.
    """

    def loss(self, features, images, targets):
        return losses.guided_style_loss(features, targets["grams"], targets["masks"], self.layer_weights)


class TotalVariationTerm(Term):
    """Smoothness: the mean squared difference of neighbouring pixels (`losses.total_variation_loss`). No
    targets."""

    name = "tv"

    def loss(self, features, images, targets):
        return losses.total_variation_loss(images)


class PaletteTerm(Term):
    """The painting's palette: the sliced Wasserstein distance between the image's colours and the painting's
    (`losses.palette_loss`).

    Targets: float32 [B, K, Q], each image's style's palette (`losses.palette_quantiles`).
    """

    name = "palette"

    def loss(self, features, images, targets):
        return losses.palette_loss(images, targets)


class TemporalTerm(Term):
    """Temporal consistency for video (Ruder et al. 2016): the squared difference, in grey levels, between the
    image and earlier results carried onto it along the optical flow, where the flow can be trusted.

    Targets: {"previous": float32 [B, J, H, W, 3] in [0, 255], J earlier results warped onto this frame;
    "weights": float32 [B, J, H, W], each one's per-pixel weight (0 where the pixel was occluded or on a motion
    boundary; Ruder's long-term weights, which count each pixel once over the J)}. The loss is the sum over the
    J of the weighted mean squared difference.
    """

    name = "temporal"

    def loss(self, features, images, targets):
        squared_difference = tf.square(images[:, None] - targets["previous"])
        return tf.reduce_sum(tf.reduce_mean(targets["weights"][..., None] * squared_difference, axis=[2, 3, 4]),
                             axis=1)

    def targets_at(self, targets, height, width):
        if tuple(targets["previous"].shape[2:4]) == (height, width):
            return targets
        batch, offsets = targets["weights"].shape[:2]
        previous = tf.image.resize(tf.reshape(targets["previous"], [-1, *targets["previous"].shape[2:]]),
                                   [height, width], method="bilinear")
        weights = tf.image.resize(tf.reshape(targets["weights"], [-1, *targets["weights"].shape[2:], 1]),
                                  [height, width], method="bilinear")
        return {"previous": tf.reshape(previous, [batch, offsets, height, width, 3]),
                "weights": tf.reshape(weights, [batch, offsets, height, width])}


class Objective:
    """The terms of a run, weighed and added in one place.

    Args:
        terms: the terms, each with a name of its own.
    """

    def __init__(self, terms: Sequence[Term]):
        names = [term.name for term in terms]
        if len(set(names)) != len(names) or "total" in names:
            raise ValueError(f"an objective's terms need distinct names other than 'total'; got {names}")
        self.terms = tuple(terms)

    @property
    def names(self) -> tuple:
        """The terms' names, then "total": the keys of `losses`."""
        return tuple(term.name for term in self.terms) + ("total",)

    @property
    def feature_terms(self) -> tuple:
        return tuple(term for term in self.terms if term.layers)

    @property
    def pixel_terms(self) -> tuple:
        return tuple(term for term in self.terms if not term.layers)

    @property
    def key(self) -> tuple:
        """The terms' keys: optimizations whose objectives have equal keys can share a traced step."""
        return tuple(term.key for term in self.terms)

    def with_terms(self, *terms: Term) -> "Objective":
        """This objective and `terms` besides."""
        return Objective(self.terms + tuple(terms))

    def weighted(self, unweighted: dict, weights: Optional[dict] = None) -> dict:
        """{name: weight * loss} and their sum under "total": the one place the terms are weighed and added.

        Args:
            unweighted: {term name: [B]}.
            weights: {term name: weight} overriding the terms' own (a served request's weights, tensors).
        """
        weights = weights or {}
        weighted = {term.name: weights.get(term.name, term.weight) * unweighted[term.name] for term in self.terms}
        weighted["total"] = tf.add_n(list(weighted.values()))
        return weighted

    def losses(self, extractor, images: tf.Tensor, targets: dict, weights: Optional[dict] = None) -> dict:
        """The weighted terms and their total for a batch of images [B, H, W, 3]: {name: [B]}.

        Args:
            extractor: the network (`tf_style.network.features.FeatureExtractor`), run once for all feature terms.
            targets: {term name: its targets}.
            weights: see `weighted`.
        """
        features = extractor(images) if self.feature_terms else {}
        return self.weighted({term.name: term.loss(features, images, targets.get(term.name))
                              for term in self.terms}, weights)


def objective_for(config: StyleConfig) -> Objective:
    """The terms that `config` asks for: content, style (Gram, Wasserstein, or with `content_masks` guided by
    the regions), TV, and the palette unless its weight is 0 or regions take their styles' palettes apart."""
    style_arguments = (config.style_weight, config.style_layers, config.balanced_style_layer_weights)
    if config.content_masks is not None:
        style = GuidedStyleTerm(*style_arguments)
    elif config.style_loss == "wasserstein":
        style = WassersteinStyleTerm(*style_arguments)
    else:
        style = GramStyleTerm(*style_arguments)
    palette = ([PaletteTerm(config.palette_weight)]
               if config.palette_weight and config.content_masks is None else [])
    return Objective([ContentTerm(config.content_weight, config.content_layers), style,
                      TotalVariationTerm(config.tv_weight), *palette])


def face_term(config: StyleConfig) -> FaceTerm:
    """The faces' term that `config` asks for, added to a run whose photo has faces (`tf_style.objective.faces`)."""
    return FaceTerm(config.face_weight, config.content_layers)


def _positions(features: tf.Tensor) -> tf.Tensor:
    """The number of positions of [B, h, w, C] features, float32."""
    return tf.cast(tf.shape(features)[1] * tf.shape(features)[2], tf.float32)
