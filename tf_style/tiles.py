"""Exact tiled optimization: the loss and image gradient of a step computed tile by tile, so that only one tile's
activations exist at a time and memory no longer limits the size of the result.

After Galerne et al., *Scaling Painting Style Transfer* (EGSR 2024); no code copied. Every loss term of
`tf_style.targets.weighted_losses` except total variation is a function of sums over the positions of each
layer: a Gram matrix is the sum of f f^T over positions divided by their number, a Wasserstein fit needs the
sum of f as well, and the content term is a sum of squared errors. So one step is:

1. each tile but the last, with a margin of image around it, goes through the network without a tape; the
   features of its inner region add into the sums (`TiledObjective`);
2. the last tile goes through under a tape, its sums complete the others, and the loss of the summed
   statistics is differentiated with respect to each sum (C x C numbers a layer) and to that tile's pixels;
3. each other tile goes through the network again under a tape, and its sums are differentiated with the
   gradients of step 2 as output gradients: that is the tile's share of the image gradient, added into one
   full-size gradient over the whole padded tile (its inner features depend on the margin's pixels too).

The margin is what makes the inner features exactly the untiled ones: the network's reach (`margin_for`), so
that no inner feature sees the tile's cut edge. Tiles start and end on multiples of 16 pixels, the stride of
block5, so that each tile's pooling grid is the image's. Total variation needs neighbouring pixels only; it is
computed on the whole image, which is cheap (no network). The objective is the untiled one; only the order of
the float additions differs.
"""

import dataclasses
import math
import time
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from tf_style import losses, vgg
from tf_style.config import StyleConfig

# Tiles start and end on multiples of this: block5 works at 1/16 of the image's side.
ALIGNMENT = 16


@dataclasses.dataclass(frozen=True)
class Tile:
    """One tile of an image: the inner region it accounts for and the padded region it runs the network on.

    Attributes:
        inner: (top, bottom, left, right) in image pixels; the inner regions of a grid partition the image.
        padded: (top, bottom, left, right): the inner region and the margin around it, within the image.
    """

    inner: tuple
    padded: tuple

    def inner_at(self, layer: str) -> tuple:
        """(top, bottom, left, right) of the inner region in the padded tile's features at `layer`."""
        factor = 2 ** (vgg.block_of(layer) - 1)
        top, bottom, left, right = self.inner
        padded_top, _, padded_left, _ = self.padded
        # The padded region starts on a multiple of 16, so its features start on a whole position at every block;
        # an inner region that ends at the image's edge keeps the positions the untiled network keeps there.
        return ((top - padded_top) // factor, bottom // factor - padded_top // factor,
                (left - padded_left) // factor, right // factor - padded_left // factor)

    def inner_in_image_at(self, layer: str) -> tuple:
        """(top, bottom, left, right) of the inner region in the whole image's features at `layer`."""
        factor = 2 ** (vgg.block_of(layer) - 1)
        top, bottom, left, right = self.inner
        return top // factor, bottom // factor, left // factor, right // factor


@dataclasses.dataclass(frozen=True)
class TileGrid:
    """Rows x columns of tiles covering a height x width image.

    Attributes:
        height, width: the image's size.
        tile_size: the largest inner side asked for (a tile's side is within 16 px of it).
        margin: pixels of image around each inner region, where the image has them.
        rows: the tiles, row by row: `rows[i][j]` is the tile in row i, column j.
    """

    height: int
    width: int
    tile_size: int
    margin: int
    rows: tuple

    @property
    def tiles(self) -> list:
        return [tile for row in self.rows for tile in row]

    def describe(self) -> str:
        """What the plan line says: '4 × 3 tiles of 512 px + 64 px margin'."""
        return f"{len(self.rows[0])} × {len(self.rows)} tiles of {self.tile_size} px + {self.margin} px margin"

    def largest_padded_pixels(self) -> int:
        return max((tile.padded[1] - tile.padded[0]) * (tile.padded[3] - tile.padded[2]) for tile in self.tiles)


def tile_grid(height: int, width: int, tile_size: int, margin: int) -> TileGrid:
    """Tiles of about `tile_size` pixels a side (the image split evenly, on multiples of 16) with `margin`."""
    if tile_size % ALIGNMENT or margin % ALIGNMENT:
        raise ValueError(f"tile size {tile_size} and margin {margin} must be multiples of {ALIGNMENT}")
    row_cuts, column_cuts = _cuts(height, tile_size), _cuts(width, tile_size)
    rows = []
    for top, bottom in zip(row_cuts, row_cuts[1:]):
        row = []
        for left, right in zip(column_cuts, column_cuts[1:]):
            padded = (max(0, top - margin), min(height, bottom + margin), max(0, left - margin),
                      min(width, right + margin))
            row.append(Tile((top, bottom, left, right), padded))
        rows.append(tuple(row))
    return TileGrid(height, width, tile_size, margin, tuple(rows))


def _cuts(length: int, tile_size: int) -> list:
    """0 = c_0 < c_1 < ... < c_n = length, the inner cuts on multiples of 16, the pieces as even as that allows."""
    count = math.ceil(length / tile_size)
    inner_cuts = {round(index * length / count / ALIGNMENT) * ALIGNMENT for index in range(1, count)}
    return [0, *sorted(cut for cut in inner_cuts if 0 < cut < length), length]


def margin_for(network: vgg.Network, layer_names: Sequence[str]) -> int:
    """The margin (a multiple of 16) that keeps a tile's inner features those of the untiled network.

    A feature at position i of a layer of stride s sees the image from i*s - reach_before to i*s + reach_after:
    each 3x3 convolution reaches one position (s pixels) further on both sides, each 2x2 pooling s more on the
    far side. The inner region's first feature sees reach_before pixels before it, its last one (at the inner
    end minus s) reach_after - s pixels past it. Through block5_conv1 that is 58 and 57 px in VGG16, so a
    margin of 64 px, and 70 and 69 px in VGG19 (two more convolutions), so 80 px; the tests check that the inner
    features at this margin are the untiled ones and that 16 px less changes them.
    """
    stride, reach_before, reach_after = 1, 0, 0
    for name, _, _ in network.layers_through_deepest(layer_names):
        if vgg.pooled_before(name):
            reach_after += stride  # the 2x2 pooling before the block
            stride *= 2
        reach_before += stride
        reach_after += stride
    return math.ceil(max(reach_before, reach_after - stride) / ALIGNMENT) * ALIGNMENT


def margin_of(config: StyleConfig) -> int:
    """The margin of a run's tiles: `--tile_margin`, or unset, what its deepest layer needs (`margin_for`)."""
    if config.tile_margin is not None:
        return config.tile_margin
    return margin_for(config.network, config.content_layers + config.style_layers)


def padded_pixels(tile: Tile, images) -> tf.Tensor:
    top, bottom, left, right = tile.padded
    return images[:, top:bottom, left:right, :]


def _crop(features: tf.Tensor, box: tuple) -> tf.Tensor:
    top, bottom, left, right = box
    return features[:, top:bottom, left:right, :]


@tf.custom_gradient
def _differentiable_crop(features: tf.Tensor, box: tf.Tensor):
    """`_crop` with a tensor `box`, whose gradient is the cropped gradient padded with zeros.

    TensorFlow's own gradient of a slice (StridedSliceGrad) is slow on the CPU: at 1024x768 in 2 x 2 tiles
    of 512 px (AMX Xeon, mixed_bfloat16) a tile's backward pass took 0.36 s with it and 0.28 s with a pad,
    against 0.22 s for the same pass without any crop.
    """
    top, bottom, left, right = box[0], box[1], box[2], box[3]
    shape = tf.shape(features)

    def gradient(crop_gradient):
        paddings = [[0, 0], [top, shape[1] - bottom], [left, shape[2] - right], [0, 0]]
        return tf.pad(crop_gradient, paddings), None

    return _crop(features, (top, bottom, left, right)), gradient


def _summed(sums: Optional[dict], more: dict) -> dict:
    """`sums` + `more`, leaf by leaf, for nested dicts of tensors; `more` itself where there are no sums yet
    (None)."""
    return more if sums is None else tf.nest.map_structure(tf.add, sums, more)


def _add_at(gradient: tf.Variable, tile: Tile, tile_gradient: tf.Tensor) -> None:
    """Adds a tile's share of the image gradient, over its padded region, to the whole image's."""
    top, bottom, left, right = tile.padded
    gradient[:, top:bottom, left:right, :].assign(gradient[:, top:bottom, left:right, :] + tile_gradient)


def tiled_features(extractor, images: np.ndarray, grid: TileGrid, layer_names: Sequence[str]) -> dict:
    """The features of whole images at `layer_names`, computed tile by tile: {layer: float32 [B, h, w, C]}.

    The same as `extractor(images)` (to float rounding) with only one tile's activations in memory.
    """
    rows = {name: [] for name in layer_names}
    for row in grid.rows:
        pieces = {name: [] for name in layer_names}
        for tile in row:
            features = extractor(padded_pixels(tile, images))
            for name in layer_names:
                pieces[name].append(_crop(features[name], tile.inner_at(name)))
        for name in layer_names:
            rows[name].append(tf.concat(pieces[name], axis=2))
    return {name: tf.concat(rows[name], axis=1) for name in layer_names}


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


def tiled_moments(extractor, images: np.ndarray, grid: TileGrid, layer_names: Sequence[str]) -> dict:
    """{layer: Moments} of whole images, computed tile by tile (the style images of a tiled run)."""
    sums = {}
    for tile in grid.tiles:
        features = extractor(padded_pixels(tile, images))
        for name in layer_names:
            inner = _crop(features[name], tile.inner_at(name))
            count = int(inner.shape[1] * inner.shape[2])
            gram_sum, feature_sum = losses.gram_matrix(inner) * count, tf.reduce_sum(inner, axis=[1, 2])
            if name in sums:
                gram_sum, feature_sum = sums[name][0] + gram_sum, sums[name][1] + feature_sum
                count += sums[name][2]
            sums[name] = (gram_sum, feature_sum, count)
    return {name: Moments(count, gram_sum, feature_sum) for name, (gram_sum, feature_sum, count) in sums.items()}


@dataclasses.dataclass(frozen=True)
class TileProgress:
    """What a callback's `on_tile` method sees as a tiled step goes through its tiles.

    Attributes:
        step: the step under way (1-based, over all scales).
        num_steps: steps in the whole run.
        tiles_done: tile passes done in this step, over both passes.
        tiles_per_step: tile passes per step: 2n - 1 for n tiles (the statistics pass runs all n, the last of
            them differentiating too, and the gradient pass the other n - 1).
        elapsed_seconds: wall time since the whole run started.
        index: which image of the caller's input this is.
    """

    step: int
    num_steps: int
    tiles_done: int
    tiles_per_step: int
    elapsed_seconds: float
    index: int = 0

    @property
    def num_tiles(self) -> int:
        return (self.tiles_per_step + 1) // 2

    def describe(self) -> str:
        """Which pass and tile: 'statistics pass, tile 3/4' or 'gradient pass, tile 1/3'."""
        if self.tiles_done <= self.num_tiles:
            return f"statistics pass, tile {self.tiles_done}/{self.num_tiles}"
        return f"gradient pass, tile {self.tiles_done - self.num_tiles}/{self.num_tiles - 1}"


class TiledObjective:
    """An objective's weighted losses and their gradient with respect to the image, computed tile by tile.

    Args:
        extractor: the VGG feature extractor.
        objective: the terms (`tf_style.objective.Objective`); each must tile exactly (`Term.tiles_exactly`).
        grid: the tiles of the image.
    """

    def __init__(self, extractor, objective, grid: TileGrid):
        untileable = [term.name for term in objective.terms if not term.tiles_exactly]
        if untileable:
            raise ValueError(f"the terms {untileable} have no tiled form (tf_style.api runs them untiled)")
        self.extractor = extractor
        self.objective = objective
        self.grid = grid
        factor = lambda name: 2 ** (vgg.block_of(name) - 1)  # noqa: E731
        self._counts = {name: float((grid.height // factor(name)) * (grid.width // factor(name)))
                        for name in extractor.layer_names}
        # Each traced for a few tile shapes (inner, edge and corner tiles), then for any shape.
        self._tile_sums = tf.function(self._sums_of_tile, reduce_retracing=True)
        self._tile_gradient = tf.function(self._gradient_of_tile, reduce_retracing=True)
        self._last_tile = tf.function(self._loss_gradients_of_last_tile, reduce_retracing=True)

    def losses_and_gradient(self, images: tf.Variable, targets: dict, loss_scale: Optional[tf.Tensor] = None,
                            on_tile: Callable[[int, int], None] = None) -> tuple:
        """The weighted loss terms {name: [B]} and the gradient of their (scaled) sum with respect to `images`.

        The statistics pass runs the network on every tile but the last; the last tile's run completes the
        sums, differentiates the feature terms' loss and back-propagates into that tile in one go, and the
        gradient pass runs the others again under a tape: 2n - 1 tile passes for n tiles, where keeping no tape
        in the statistics pass and running every tile twice would be 2n (with 2 x 2 tiles, 8% of a step). The
        pixel terms are computed on the whole image.

        Args:
            images: the image variable, [B, H, W, 3] of the grid's size.
            targets: {term name: its targets}, with full-size content features.
            loss_scale: the factor an optimizer's loss scaling multiplies the total by before differentiating
                (`LossScaleOptimizer.scale_loss`, a product, so applied to each term apart); None: 1. A tensor,
                not the optimizer's method: a Python callable is part of a traced function's signature, and a
                new bound method each step traced the last tile's function again at every step.
            on_tile: called with (tile passes done, tile passes per step) after each tile of each pass.
        """
        *first_tiles, last_tile = self.grid.tiles
        crops = [self._tile_targets(tile, targets) for tile in self.grid.tiles]
        passes_per_step = 2 * len(first_tiles) + 1
        loss_scale = tf.constant(1.0) if loss_scale is None else tf.convert_to_tensor(loss_scale, tf.float32)
        done = 0
        first_sums = None
        for tile, tile_targets in zip(first_tiles, crops):
            tile_sums = self._tile_sums(padded_pixels(tile, images), self._boxes(tile), tile_targets)
            first_sums = _summed(first_sums, tile_sums)
            done += 1
            if on_tile is not None:
                on_tile(done, passes_per_step)
        unweighted, sum_gradients, last_gradient = self._last_tile(
            padded_pixels(last_tile, images), self._boxes(last_tile), crops[-1], first_sums, targets, loss_scale)
        done += 1
        if on_tile is not None:
            on_tile(done, passes_per_step)
        with tf.GradientTape() as tape:
            tape.watch(images)
            pixel_terms = self.objective.pixel_terms
            for term in pixel_terms:
                unweighted[term.name] = term.loss({}, images, targets.get(term.name))
            pixel_total = loss_scale * tf.add_n(
                [tf.zeros([])] + [term.weight * tf.reduce_sum(unweighted[term.name]) for term in pixel_terms])
        gradient = tf.Variable(tape.gradient(pixel_total, images, unconnected_gradients="zero"), trainable=False)
        _add_at(gradient, last_tile, last_gradient)
        for tile, tile_targets in zip(first_tiles, crops):
            _add_at(gradient, tile, self._tile_gradient(padded_pixels(tile, images), self._boxes(tile),
                                                        tile_targets, sum_gradients))
            done += 1
            if on_tile is not None:
                on_tile(done, passes_per_step)
        return self.objective.weighted(unweighted), tf.convert_to_tensor(gradient)

    def _boxes(self, tile: Tile) -> dict:
        return {name: tf.constant(tile.inner_at(name), tf.int32) for name in self.extractor.layer_names}

    def _tile_targets(self, tile: Tile, targets: dict) -> dict:
        """{term name: the part of its targets this tile's sums compare with}."""
        def crop_at(layer, features):
            return _crop(features, tile.inner_in_image_at(layer))
        return {term.name: term.tile_targets(targets.get(term.name), crop_at) for term in self.objective.feature_terms}

    def _sums_of_tile(self, tile_images: tf.Tensor, boxes: dict, tile_targets: dict) -> dict:
        """The sums over a tile's inner positions that the feature terms need: {term name: {key: tensor}}."""
        features = self.extractor(tile_images)
        inner = {name: _differentiable_crop(features[name], boxes[name]) for name in self.extractor.layer_names}
        return {term.name: term.tile_sums(inner, tile_targets[term.name]) for term in self.objective.feature_terms}

    def _loss_gradients_of_last_tile(self, tile_images: tf.Tensor, boxes: dict, tile_targets: dict,
                                     first_sums: Optional[dict], targets: dict, loss_scale: tf.Tensor) -> tuple:
        """The feature terms (unweighted), the gradients of their weighted sum with respect to the sums, and the
        last tile's share of the image gradient, from the other tiles' sums (None: there are none)."""
        with tf.GradientTape() as tape:
            tape.watch(tile_images)
            sums = _summed(first_sums, self._sums_of_tile(tile_images, boxes, tile_targets))
            unweighted = {term.name: term.loss_of_sums(sums[term.name], targets.get(term.name), self._counts)
                          for term in self.objective.feature_terms}
            total = loss_scale * tf.add_n([term.weight * tf.reduce_sum(unweighted[term.name])
                                           for term in self.objective.feature_terms])
        flat_sums = tf.nest.flatten(sums)
        *sum_gradients, tile_gradient = tape.gradient(total, flat_sums + [tile_images])
        return unweighted, tf.nest.pack_sequence_as(sums, sum_gradients), tile_gradient

    def _gradient_of_tile(self, tile_images: tf.Tensor, boxes: dict, tile_targets: dict,
                          sum_gradients: dict) -> tf.Tensor:
        """This tile's share of the image gradient: [B, h, w, 3] over its padded region."""
        with tf.GradientTape() as tape:
            tape.watch(tile_images)
            sums = self._sums_of_tile(tile_images, boxes, tile_targets)
        return tape.gradient(tf.nest.flatten(sums), tile_images, output_gradients=tf.nest.flatten(sum_gradients))


def tile_progress_reporter(callbacks: Sequence, step: int, num_steps: int, start_time: float,
                           index: int) -> Optional[Callable[[int, int], None]]:
    """A function for `on_tile` that hands a `TileProgress` to the callbacks that have an `on_tile` method;
    None if none has."""
    listeners = [callback.on_tile for callback in callbacks if hasattr(callback, "on_tile")]
    if not listeners:
        return None

    def report(tiles_done: int, tiles_per_step: int) -> None:
        progress = TileProgress(step, num_steps, tiles_done, tiles_per_step, time.perf_counter() - start_time,
                                index)
        for listener in listeners:
            listener(progress)

    return report
