"""The tiles of an image and the network's features computed tile by tile: the geometry of exact tiling
(after Galerne et al., *Scaling Painting Style Transfer*, EGSR 2024; no code copied). The tiled step itself, the
loss and gradient of a step tile by tile, is `tf_style.tiling.tiled_objective`.

A tile is an inner region and a margin of image around it: the margin is the network's reach (`margin_for`),
so that no inner feature sees the tile's cut edge and the inner features are exactly the untiled ones. Tiles
start and end on multiples of 16 pixels, the stride of block5, so that each tile's pooling grid is the image's.
"""

import dataclasses
import math
from typing import Sequence

import numpy as np
import tensorflow as tf

from tf_style.config import StyleConfig
from tf_style.network import vgg

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


def crop(features: tf.Tensor, box: tuple) -> tf.Tensor:
    """Features [B, H, W, C] within `box` (top, bottom, left, right)."""
    top, bottom, left, right = box
    return features[:, top:bottom, left:right, :]


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
                pieces[name].append(crop(features[name], tile.inner_at(name)))
        for name in layer_names:
            rows[name].append(tf.concat(pieces[name], axis=2))
    return {name: tf.concat(rows[name], axis=1) for name in layer_names}
