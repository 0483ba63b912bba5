"""What a run will be, before it runs: each pair's result size, the sizes its styles are seen at, whether it runs in
tiles, how many pairs go in one step; then the pairs loaded and resized into the `coarse_to_fine.Batch` that
`coarse_to_fine.CoarseToFine` optimizes.

Everything a pair can be refused for (an unreadable image, a size the network cannot see, masks that do not
match, a run that does not fit in memory) is found here, from the images' headers where it can be, so that a
batch run refuses a bad pair before it spends minutes on the others.
"""

import dataclasses
import os
from typing import Optional, Sequence

import numpy as np

from tf_style import color, images, memory, sizes
from tf_style.config import MAX_SEED, StyleConfig
from tf_style.errors import UsageError
from tf_style.network import vgg
from tf_style.network.device import ComputePlan
from tf_style.objective import faces, masks
from tf_style.objective.terms import Term
from tf_style.optimization import pyramid
from tf_style.optimization.coarse_to_fine import Batch
from tf_style.tiling import tiles


@dataclasses.dataclass(frozen=True)
class PairPlan:
    """What a pair's run will be, known from the images' headers before they are loaded.

    Attributes:
        height, width: the result's size.
        style_shapes: (height, width) each style is seen at, at the last level.
        tile_size: the levels larger than this run in tiles (`tf_style.tiling.tiles`); 0: none.
    """

    height: int
    width: int
    style_shapes: list
    tile_size: int


@dataclasses.dataclass
class PreparedPair:
    """A pair loaded and resized for the run: what the optimization needs of it."""

    index: int
    content_source: object
    content_image: np.ndarray
    style_images: list
    start_image: np.ndarray
    style_key: object
    tile_size: int
    content_masks: Optional[np.ndarray] = None
    style_masks: Optional[list] = None
    face_mask: Optional[np.ndarray] = None


class Planner:
    """Plans and prepares the pairs of runs with one set of options on one machine.

    It keeps what several runs share: each style loaded at the size it is seen at, the config's masks, and which
    styles it already said are seen upscaled.

    Args:
        config: the options of every run.
        plan: the machine's compute plan (the device and precision decide what fits in memory).
        log: where one-line notices go.
    """

    def __init__(self, config: StyleConfig, plan: ComputePlan, log):
        self.config = config
        self.plan = plan
        self._log = log
        self._first_level = pyramid.pyramid_of(config).first
        self._style_sources = {}  # style key -> the styles it names, kept alive (see `_style_key`)
        self._style_images = {}  # style key -> the styles loaded at the size they are seen, loaded once
        self._upscaled_styles = set()  # the styles said to be seen upscaled at the first levels
        self._loaded_masks = None  # (content masks, style masks) as loaded from the config, once

    def plan_pair(self, content, styles: list) -> PairPlan:
        """A pair's result size, style sizes and tiles, from headers where it can.

        Raises:
            UsageError: an image cannot be read, or the pair cannot run at these options on this machine.
        """
        if not styles:
            raise UsageError("--style: give at least one style image")
        config = self.config
        if config.style_blend_weights is not None and len(config.style_blend_weights) != len(styles):
            raise UsageError(f"--style_blend_weights has {len(config.style_blend_weights)} values for "
                             f"{len(styles)} style images; give one weight per style image")
        height, width = sizes.ints(sizes.scaled_size(*image_size(content, "content image"), config.size))
        if config.content_masks is not None:
            self._check_masks(len(styles), height, width)
        first_level = self._first_level
        smallest_side = min(first_level.size_of(height, width))
        if smallest_side < vgg.MIN_INPUT_SIDE:
            raise UsageError(f"--size={config.size} (first scale {first_level.long_side}) makes the result "
                             f"{smallest_side} pixels on its short side; the network needs at least "
                             f"{vgg.MIN_INPUT_SIDE}: use a larger --size or --initial_size")
        style_long_side = int(sizes.style_long_side(config.size, config.style_scale))
        style_sizes = [image_size(style, "style image") for style in styles]
        style_shapes = [sizes.ints(sizes.style_seen_size(*size, style_long_side)) for size in style_sizes]
        self._say_where_styles_are_upscaled(styles, style_sizes, style_long_side)
        if config.content_masks is not None:
            self._check_style_masks(style_shapes)
            # Before resizing: resizing to a --size far too large would itself need gigabytes.
            return PairPlan(height, width, style_shapes, self._untiled(height, width, style_shapes))
        return PairPlan(height, width, style_shapes, tile_size_for(height, width, style_shapes, config, self.plan))

    def batch_size(self, height: int, width: int, style_shapes: list) -> int:
        """`config.batch_size`, or fewer if this CPU's memory cannot hold that many images of this size.

        On a GPU the allocator fails with an error instead of the kernel killing the process, and a batch
        that does not fit is the user's to shrink with `batch_size`.
        """
        if self.plan.device != "CPU":
            return self.config.batch_size
        return memory.largest_batch_that_fits(height, width, style_shapes, self.config.network,
                                              self.config.content_layers + self.config.style_layers,
                                              self.plan.dtype_policy, self.config.batch_size,
                                              optimizer=self.config.optimizer)

    def prepare(self, index: int, content, style, planned: PairPlan) -> PreparedPair:
        """Loads a pair's images at the sizes `plan_pair` gave (`planned`), and its start image."""
        styles = style_list(style)
        height, width, style_shapes = planned.height, planned.width, planned.style_shapes
        photo = images.load_image(content, "content image")
        content_image = images.resize(photo, height, width)
        style_key = self._style_key(styles)
        if style_key not in self._style_images:
            self._style_images[style_key] = [images.resize(images.load_image(source, "style image"), *shape)
                                              for source, shape in zip(styles, style_shapes)]
        style_images = self._style_images[style_key]
        start = start_image(self.config, content_image, style_images)
        prepared = PreparedPair(index, content, content_image, style_images, start, style_key, planned.tile_size)
        if self.config.face_weight:
            prepared.face_mask = _face_mask(photo, height, width)
        if self.config.content_masks is not None:
            content_masks, style_masks = self._masks()
            prepared.content_masks = np.stack([masks.resize_masks(mask[None], height, width)[0]
                                               for mask in content_masks])
            prepared.style_masks = [None if mask is None else masks.resize_masks(mask[None], *shape)[0]
                                    for mask, shape in zip(style_masks, style_shapes)]
        return prepared

    def prepared_pairs(self, pairs: Sequence[tuple]) -> list:
        """`PreparedPair`s of (content, style) pairs, which must share a result size and tiles.

        Raises:
            UsageError: as `plan_pair`, or an image that cannot be loaded.
            ValueError: pairs whose runs differ in size or tiles.
        """
        planned = [self.plan_pair(content, style_list(style)) for content, style in pairs]
        if len({(each.height, each.width, each.tile_size) for each in planned}) > 1:
            raise ValueError(f"one batch holds results of one size and tiles; got {planned}")
        return [self.prepare(index, *pair, plan) for index, (pair, plan) in enumerate(zip(pairs, planned))]

    def _masks(self) -> tuple:
        """The config's masks, loaded once: ([content mask [H, W], ...], [style mask [h, w] or None, ...]).

        Raises:
            UsageError: a mask that cannot be read.
        """
        if self._loaded_masks is None:
            config = self.config
            content_masks = [images.load_mask(mask, "--content_masks image") for mask in config.content_masks]
            style_masks = [None if mask is None else images.load_mask(mask, "--style_masks image")
                           for mask in config.style_masks or [None] * len(content_masks)]
            self._loaded_masks = content_masks, style_masks
        return self._loaded_masks

    def _check_masks(self, num_styles: int, height: int, width: int) -> None:
        """Refuses masks that do not match the styles, or that leave a region empty at the first level."""
        config = self.config
        for name in ("content_masks", "style_masks"):
            given = getattr(config, name)
            if given is not None and len(given) != num_styles:
                raise UsageError(f"--{name} has {len(given)} masks for {num_styles} --style images; give one mask "
                                 "per style, in the same order")
        content_masks, _ = self._masks()
        first_size = self._first_level.size_of(height, width)
        for index, mask in enumerate(content_masks):
            self._require_region(mask, first_size, "--content_masks", index, "of the photo")

    def _check_style_masks(self, style_shapes: list) -> None:
        """Refuses a style mask that leaves its painting no region at the first level."""
        for index, (mask, shape) in enumerate(zip(self._masks()[1], style_shapes)):
            if mask is not None:
                first_size = self._first_level.style_size_of(*shape)
                self._require_region(mask, first_size, "--style_masks", index, "of its painting")

    def _require_region(self, mask: np.ndarray, size: tuple, flag: str, index: int, of_what: str) -> None:
        """Refuses a mask that no style layer sees any of at `size` (height, width), the first level."""
        seen = masks.layer_masks(masks.resize_masks(mask[None], *size), self.config.network,
                                 self.config.style_layers, self.config.mask_mode)
        if not any(bool(np.any(each.numpy() > 0)) for each in seen.values()):
            given = getattr(self.config, flag[2:])[index]
            name = describe(given) if isinstance(given, (str, os.PathLike)) else f"mask {index + 1}"
            raise UsageError(f"{flag}: {name} leaves no region {of_what} at the first scale ({size[1]}x{size[0]} px; "
                             f"--mask_mode={self.config.mask_mode}): paint a larger region, or use a larger "
                             "--initial_size")

    def _untiled(self, height: int, width: int, style_shapes: list) -> int:
        """0, the tile size of a run with masks: refuses one whose untiled step would not fit in memory."""
        if self.plan.device == "CPU":
            try:
                memory.require_fits(height, width, style_shapes, self.config.network,
                                    self.config.content_layers + self.config.style_layers, self.plan.dtype_policy,
                                    optimizer=self.config.optimizer)
            except UsageError as error:
                raise UsageError(f"--content_masks need an untiled run, and {error}") from None
        return 0

    def _say_where_styles_are_upscaled(self, styles: list, style_sizes: list, style_long_side: int) -> None:
        """Logs, once per style, that a style is seen larger than asked at the first level(s): the network needs
        `vgg.MIN_INPUT_SIDE` pixels (see `sizes.style_seen_size`).

        Args:
            style_sizes: each style's (height, width) as given.
            style_long_side: the long side the styles are asked to be seen at, at the last level.
        """
        for style, size in zip(styles, style_sizes):
            asked = sizes.ints(sizes.scaled_size(*size, self._first_level.style_long_side_of(style_long_side)))
            name = describe(style)
            if min(asked) < vgg.MIN_INPUT_SIDE and name not in self._upscaled_styles:
                self._upscaled_styles.add(name)
                self._log(f"tf_style: style {name} would be {asked[1]}x{asked[0]} at the first scale, under the "
                          f"{vgg.MIN_INPUT_SIDE} pixels the network needs: it is seen upscaled to "
                          f"{vgg.MIN_INPUT_SIDE} px on its short side there (a larger --style_scale avoids it)")

    def _style_key(self, styles: list) -> tuple:
        """The name under which a pair's styles are cached: paths by path, other objects by id.

        An id names an object only while it lives, so the objects are kept alive with the cache.
        """
        key = tuple(os.fspath(style) if isinstance(style, (str, os.PathLike)) else ("object", id(style))
                    for style in styles)
        self._style_sources[key] = styles
        return key


def batch_of(prepared: Sequence[PreparedPair], extra_terms: Sequence[Term] = (),
             extra_targets: Optional[dict] = None) -> Batch:
    """The `coarse_to_fine.Batch` of prepared pairs of one size (`extra_terms`, `extra_targets`: see `Batch`)."""
    face_masks = None
    if any(pair.face_mask is not None for pair in prepared):
        face_masks = np.stack([pair.face_mask if pair.face_mask is not None
                               else np.zeros(pair.content_image.shape[:2], np.float32) for pair in prepared])
    return Batch(content_images=np.stack([pair.content_image for pair in prepared]),
                 style_images=[pair.style_images for pair in prepared],
                 start_images=np.stack([pair.start_image for pair in prepared]),
                 indices=[pair.index for pair in prepared], style_keys=[pair.style_key for pair in prepared],
                 tile_size=prepared[0].tile_size, content_masks=prepared[0].content_masks,
                 style_masks=[pair.style_masks for pair in prepared], face_masks=face_masks,
                 extra_terms=tuple(extra_terms),
                 extra_targets=dict(extra_targets or {}))


def _face_mask(photo: np.ndarray, height: int, width: int) -> Optional[np.ndarray]:
    """Where the photo's faces are, at the result's height x width (`faces.face_mask`); None if it has none.

    The faces are searched on the photo as given, where a face has more pixels than in a small result.
    """
    boxes = faces.find_faces(photo)
    if not boxes:
        return None
    scale_y, scale_x = height / photo.shape[0], width / photo.shape[1]
    return faces.face_mask(height, width, [(x * scale_x, y * scale_y, box_width * scale_x, box_height * scale_y)
                                           for x, y, box_width, box_height in boxes]).numpy()


def tile_size_for(height: int, width: int, style_shapes, config: StyleConfig, plan: ComputePlan) -> int:
    """The tile size of a run at `height` x `width` (0: untiled): `config.tile_size`, or where that is 0 on a
    CPU, tiles only if the untiled step would not fit in memory (`memory.choose_tile_size`).

    On a GPU the allocator fails with an error instead of the kernel killing the process, so only CPU runs
    are checked, and tiled only when asked.

    Raises:
        UsageError: the run would not fit in this machine's memory, even in tiles.
    """
    if plan.device != "CPU":
        return config.tile_size
    return memory.choose_tile_size(height, width, style_shapes, config.network,
                                   config.content_layers + config.style_layers,
                                   config.content_layers, plan.dtype_policy, config.tile_size,
                                   tiles.margin_of(config), optimizer=config.optimizer)


def start_image(config: StyleConfig, content_image: np.ndarray, style_images: list) -> np.ndarray:
    """The start of the optimization at the output size, as `config.init` asks."""
    # The colour reference for the style-coloured starts is the most heavily weighted style.
    blend = config.style_blend_weights or (1.0,) * len(style_images)
    main_style = style_images[int(np.argmax(blend))]
    rng = np.random.default_rng(config.seed)
    if config.init == "content":
        return content_image.copy()
    if config.init == "noise":
        seed = config.seed if config.seed is not None else int(rng.integers(MAX_SEED, endpoint=True))
        return pyramid.noise_start(*content_image.shape[:2], seed).numpy()
    if config.init == "style_noise":
        return color.colored_noise(content_image.shape, main_style, rng).astype(np.float32)
    if config.init == "style_colors":
        return color.match_color_statistics(content_image, main_style).astype(np.float32)
    return images.resize(images.load_image(config.init, "--init image"), *content_image.shape[:2])


def style_list(style) -> list:
    """A pair's styles as a list: one style, or the list of styles it blends."""
    return list(style) if isinstance(style, (list, tuple)) else [style]


def image_size(source, what: str) -> tuple:
    """(height, width) of an image given in any form `load_image` takes; files are read from the header."""
    if isinstance(source, (str, os.PathLike)):
        return images.image_file_size(os.fspath(source), what)
    return images.load_image(source, what).shape[:2]


def describe(source) -> str:
    """How a notice names an image: a file by its name, an object by its type."""
    return os.path.basename(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else type(source).__name__
