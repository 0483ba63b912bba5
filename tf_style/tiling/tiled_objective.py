"""Exact tiled optimization: the loss and image gradient of a step computed tile by tile (on the grid of
`tf_style.tiling.tiles`), so that only one tile's activations exist at a time and memory no longer limits the size of
the result.

After Galerne et al., *Scaling Painting Style Transfer* (EGSR 2024); no code copied. Every feature term of the
objective (`tf_style.objective.terms`: content, Gram and Wasserstein style) is a function of sums over the positions
of each layer: a Gram matrix is the sum of f f^T over positions divided by their number, a Wasserstein fit needs
the sum of f as well, and the content term is a sum of squared errors. So one step is:

1. each tile but the last, with a margin of image around it, goes through the network without a tape; the
   features of its inner region add into the sums (`TiledObjective`);
2. the last tile goes through under a tape, its sums complete the others, and the loss of the summed
   statistics is differentiated with respect to each sum (C x C numbers a layer) and to that tile's pixels;
3. each other tile goes through the network again under a tape, and its sums are differentiated with the
   gradients of step 2 as output gradients: that is the tile's share of the image gradient, added into one
   full-size gradient over the whole padded tile (its inner features depend on the margin's pixels too).

The pixel terms (total variation, the video's temporal term) need no network; they are computed on the whole
image, which is cheap. The objective is the untiled one; only the order of the float additions differs.
"""

import dataclasses
import time
from typing import Callable, Optional, Sequence

import tensorflow as tf

from tf_style.network import vgg
from tf_style.tiling.tiles import Tile, TileGrid, crop, padded_pixels


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
        objective: the terms (`tf_style.objective.terms.Objective`); each must tile exactly (`Term.tiles_exactly`).
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
        self._tile_sums = tf.function(self._sums_of_tile, reduce_retracing=True, autograph=False)
        self._tile_gradient = tf.function(self._gradient_of_tile, reduce_retracing=True, autograph=False)
        self._last_tile = tf.function(self._loss_gradients_of_last_tile, reduce_retracing=True,
                                      autograph=False)

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
            return crop(features, tile.inner_in_image_at(layer))
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

    return crop(features, (top, bottom, left, right)), gradient


def _summed(sums: Optional[dict], more: dict) -> dict:
    """`sums` + `more`, leaf by leaf, for nested dicts of tensors; `more` itself where there are no sums yet
    (None)."""
    return more if sums is None else tf.nest.map_structure(tf.add, sums, more)


def _add_at(gradient: tf.Variable, tile: Tile, tile_gradient: tf.Tensor) -> None:
    """Adds a tile's share of the image gradient, over its padded region, to the whole image's."""
    top, bottom, left, right = tile.padded
    gradient[:, top:bottom, left:right, :].assign(gradient[:, top:bottom, left:right, :] + tile_gradient)


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
