"""The Python API: `stylize()` paints one content image in a style; `stylize_batch()` paints many pairs;
`stylize_to_files()` writes a batch's results as files and, run again, does only the pairs still missing.

The command line is a thin shell around these functions, so a notebook gets exactly what the CLI gets: what a
result's files are (`ResultFiles`: the image, its snapshots, its TensorBoard run, its contact sheet) and what
a batch run to files means (skip the results that exist unless `overwrite`) are defined here. A `Stylizer`
holds what several stylizations with one set of options share: the network, built once, and the style
statistics of each style at each scale, computed once.
"""

import dataclasses
import os
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from tf_style import color, images, masks, memory, pyramid, tiles, vgg
from tf_style import pairs as batch_pairs
from tf_style.callbacks import ForEachImage, SnapshotSaver, TensorBoardLogger
from tf_style.config import MAX_SEED, StyleConfig, scaled_size, style_seen_size
from tf_style.device import ComputePlan, plan_compute
from tf_style.errors import DivergedError, Interrupted, OutOfMemory, UsageError
from tf_style.features import FeatureExtractor, extractor_for
from tf_style.files import require_writable_directory
from tf_style.objective import Term
from tf_style.optimize import Callback
from tf_style.schedule import CoarseToFine, noise_start

SAMPLES_DIR = os.path.join(os.path.dirname(__file__), "samples")
SAMPLE_CONTENT = os.path.join(SAMPLES_DIR, "photos", "tubingen.jpg")
SAMPLE_STYLE = os.path.join(SAMPLES_DIR, "paintings", "starry_night.jpg")


@dataclasses.dataclass(frozen=True)
class PairResult:
    """The outcome of one content × style pair of a batch.

    Attributes:
        index: the pair's position in the input.
        content: the content as given.
        style: the style (or list of styles to blend) as given.
        image: the result, float32 [H, W, 3] in [0, 255]; for a pair that diverged its last finite image (None
            if no step gave one); None if the pair failed otherwise.
        error: why the pair failed (a UsageError for a bad image, a DivergedError), or None.
    """

    index: int
    content: object
    style: object
    image: Optional[np.ndarray] = None
    error: Optional[Exception] = None


@dataclasses.dataclass(frozen=True)
class FileResult:
    """The outcome of one pair of `stylize_to_files`: its result was written to `pair.output`, or it failed.

    Attributes:
        pair: the content, the style and the path of the result.
        error: why the pair failed (a UsageError for a bad image, a DivergedError), or None.
        written: whether `pair.output` was written: the result, or a diverged pair's last finite image.
    """

    pair: batch_pairs.Pair
    error: Optional[Exception] = None
    written: bool = False


class ResultFiles:
    """The files of one result: the image, and as asked its snapshots, its TensorBoard run and its contact sheet.

    Args:
        output: the result's path; the snapshots are `<output>_stepNNNN.png`, the sheet `<output>_sheet.png`.
        content, styles: the result's sources, the first panels of its contact sheet.
        config: the options (`save_every` writes snapshots, and TensorBoard images at the same steps).
        logdir: a TensorBoard run named after the output goes in this directory; None for none.
        contact_sheet: also write content | style(s) | snapshots | result side by side.
    """

    def __init__(self, output: str, content, styles: Sequence, config: StyleConfig, logdir: Optional[str] = None,
                 contact_sheet: bool = False):
        self.output = output
        self._sources = (content, *styles)
        self._contact_sheet = contact_sheet
        self._snapshots = SnapshotSaver(output, config.save_every) if config.save_every else None
        self.callbacks = [self._snapshots] if self._snapshots is not None else []
        if logdir:
            run_name = os.path.splitext(os.path.basename(output))[0]
            self.callbacks.append(TensorBoardLogger(os.path.join(logdir, run_name), config.save_every))

    def write(self, image: np.ndarray) -> None:
        """Writes the result, then its contact sheet if asked."""
        images.save_image(self.output, image)
        if self._contact_sheet:
            steps = [images.load_image(path) for path in self._snapshots.saved] if self._snapshots else []
            panels = [images.load_image(source) for source in self._sources] + steps + [image]
            images.save_image(contact_sheet_path(self.output), images.contact_sheet(panels, image.shape[0]))


def contact_sheet_path(output: str) -> str:
    """Where a result's contact sheet goes: `out/result.png` -> `out/result_sheet.png`."""
    stem, extension = os.path.splitext(output)
    return f"{stem}_sheet{extension}"


def unfinished(listed: Sequence[batch_pairs.Pair], overwrite: bool = False,
               exists: Callable[[str], bool] = os.path.exists) -> list:
    """The pairs a batch run to files still has to do: every pair with `overwrite`, else those whose result
    does not exist (`exists`: the file system's test, e.g. Beam's `FileSystems.exists`)."""
    return list(listed) if overwrite else [pair for pair in listed if not exists(pair.output)]


@dataclasses.dataclass(frozen=True)
class _PlannedPair:
    """What a pair's run will be, known from the images' headers before they are loaded.

    Attributes:
        height, width: the result's size.
        style_shapes: (height, width) each style is seen at, at the last scale.
        tile_size: the scales larger than this run in tiles (`tf_style.tiles`); 0: none.
    """

    height: int
    width: int
    style_shapes: list
    tile_size: int


@dataclasses.dataclass
class _PreparedPair:
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


class Stylizer:
    """Stylizes with one set of options, building the network once for all the images it is given.

    Args:
        config: a StyleConfig; `options` override its fields. None starts from the defaults.
        log: where one-line notices go (the compute plan, each batch); None for silence.
        **options: StyleConfig fields, e.g. `size=256, steps=200, style_weight=2.0`.
    """

    def __init__(self, config: Optional[StyleConfig] = None, log=print, **options):
        self.config = config.replace(**options) if config is not None else StyleConfig(**options)
        self.plan = plan_compute(self.config.precision, self.config.xla)
        self._log = log or (lambda message: None)
        self._coarse_to_fine = None
        self._style_sources = {}  # style key -> the styles it names, kept alive (see `_style_key`)
        self._style_images = {}  # style key -> the styles loaded at the size they are seen, loaded once
        self._upscaled_styles = set()  # the styles said to be seen upscaled at the first scales
        self._loaded_masks = None  # (content masks, style masks) as loaded from the config, once
        self._network_of = None  # a Stylizer whose network this one uses (`sharing_network`)

    def sharing_network(self, log=None, **options) -> "Stylizer":
        """A Stylizer with other options (none of those that build the network) that uses this one's network
        (a video's later frames run other steps on the same network).

        Args:
            log: as for the constructor; None for silence.
            **options: StyleConfig fields to change.
        """
        config = self.config.replace(**options)
        changed = [name for name in StyleConfig.network_options()
                   if getattr(config, name) != getattr(self.config, name)]
        if changed:
            raise ValueError(f"options {changed} build the network; a Stylizer that shares it cannot change them")
        other = Stylizer(config, log=log)
        other._network_of = self
        return other

    @property
    def extractor(self) -> FeatureExtractor:
        """The VGG feature extractor, built on first use."""
        return self._schedule().extractor

    def _schedule(self) -> CoarseToFine:
        """The coarse-to-fine runner, built with the network on first use; it keeps each style's statistics at
        each scale, and a batch run's optimizations by shape."""
        if self._coarse_to_fine is None:
            config = self.config
            long_sides = pyramid.pyramid_of(config).long_sides
            self._log(f"tf_style: {self.plan.reason}; scales {'→'.join(map(str, long_sides))} px")
            extractor = (self._network_of.extractor if self._network_of is not None
                         else extractor_for(config, self.plan.dtype_policy, self.plan.conv_kernels))
            self._coarse_to_fine = CoarseToFine(extractor, config, jit_compile=self.plan.jit_compile)
        return self._coarse_to_fine

    def stylize(self, content, style, callbacks: Sequence[Callback] = (), start: Optional[np.ndarray] = None,
                extra_terms: Sequence[Term] = (), extra_targets: Optional[dict] = None) -> np.ndarray:
        """Paints `content` in the style of `style`; see `tf_style.stylize`.

        Args:
            start: float32 [H, W, 3] in [0, 255] at the result's size: where the optimization starts, instead of
                `config.init` (a video's frame starts from the last result carried along the flow).
            extra_terms: loss terms besides the config's (`tf_style.objective`), with `extra_targets` {term
                name: its targets at the result's size, batch 1} (see `CoarseToFine.run`).
        """
        pair = self._prepare(0, content, style, self._planned_shapes(content, _style_list(style)))
        if start is not None:
            if start.shape != pair.content_image.shape:
                raise ValueError(f"the start is {start.shape[:2]}, the result {pair.content_image.shape[:2]}")
            pair.start_image = np.asarray(start, np.float32)
        try:
            return self._run([pair], callbacks, extra_terms=extra_terms, extra_targets=extra_targets)[0]
        except (DivergedError, Interrupted) as error:
            # One image in, one image out: the error carries this image, not a batch of one.
            if error.image is not None:
                error.image = self._finish(error.image[0], pair)
            raise

    def stylize_batch(self, pairs: Sequence[tuple], callbacks: Sequence[Callback] = ()) -> list:
        """Stylizes every (content, style) pair; returns a `PairResult` for each, in input order.

        A pair that fails (an unreadable image, a divergence) has its error in its result; the rest go on.
        """
        return sorted(self.iter_stylize_batch(pairs, callbacks), key=lambda result: result.index)

    def iter_stylize_batch(self, pairs: Sequence[tuple], callbacks: Sequence[Callback] = ()
                           ) -> Iterator[PairResult]:
        """Yields a `PairResult` for every (content, style) pair as soon as it is done.

        Pairs whose results have the same size are optimized together, up to `config.batch_size` (or fewer
        if memory is short) in one train step. Callbacks get reports whose `index` is the pair's position in
        `pairs`.

        Raises:
            Interrupted: a KeyboardInterrupt arrived; the pairs already yielded are done, the others not.
            UsageError: options that no pair can use (checkpoints with several pairs).
        """
        pairs = [tuple(pair) for pair in pairs]
        if len(pairs) > 1:
            # A batch may blend styles for each pair; it cannot resume from one run's checkpoint.
            self.config.require_one_result_options_unset("a batch run", names=("checkpoint_dir",))
        groups = {}  # (height, width, tile size) -> [(index, _PlannedPair)], in input order
        for index, (content, style) in enumerate(pairs):
            try:
                planned = self._planned_shapes(content, _style_list(style))
            except UsageError as error:
                yield PairResult(index, content, style, error=error)
                continue
            groups.setdefault((planned.height, planned.width, planned.tile_size), []).append((index, planned))
        for (height, width, tile_size), members in groups.items():
            style_shapes = [shape for _, planned in members for shape in planned.style_shapes]
            # A tiled run holds one image: its tiles take the memory that a batch would.
            batch_size = 1 if tile_size else self._batch_size(height, width, style_shapes)
            for start in range(0, len(members), batch_size):
                yield from self._stylize_group(members[start:start + batch_size], pairs, callbacks)

    def stylize_to_files(self, listed: Sequence[batch_pairs.Pair], overwrite: bool = False,
                         contact_sheet: bool = False, logdir: Optional[str] = None,
                         callbacks: Sequence[Callback] = ()) -> Iterator[FileResult]:
        """Stylizes the pairs whose result is missing and writes each result as soon as its batch is done.

        Yields a `FileResult` for each pair done (written or failed); an interrupted run keeps the results
        already written, and the same call does the rest. See `stylize_to_files`.

        Args:
            listed: the pairs, each with the path of its result (`tf_style.pairs`).
            overwrite, contact_sheet, logdir: as for `stylize_to_files`.
            callbacks: also called with every report; a report's `index` is its pair's position among the
                pairs still to do.
        """
        todo = unfinished(listed, overwrite)
        if len(todo) < len(listed):
            self._log(f"skipping {len(listed) - len(todo)} of {len(listed)} pairs whose results exist "
                      "(--overwrite redoes them)")
        files = [ResultFiles(pair.output, pair.content, [pair.style], self.config, logdir, contact_sheet)
                 for pair in todo]
        every_report = [*callbacks, ForEachImage({index: result.callbacks for index, result in enumerate(files)})]
        for outcome in self.iter_stylize_batch([(pair.content, pair.style) for pair in todo], every_report):
            if outcome.image is not None:  # a result, or a diverged pair's last finite image, as a single run
                files[outcome.index].write(outcome.image)
            yield FileResult(todo[outcome.index], outcome.error, written=outcome.image is not None)

    def _batch_size(self, height: int, width: int, style_shapes: list) -> int:
        """`config.batch_size`, or fewer if this CPU's memory cannot hold that many images of this size.

        On a GPU the allocator fails with an error instead of the kernel killing the process, and a batch
        that does not fit is the user's to shrink with `batch_size`.
        """
        if self.plan.device != "CPU":
            return self.config.batch_size
        return memory.largest_batch_that_fits(height, width, style_shapes, self.config.network,
                                              self.config.content_layers + self.config.style_layers,
                                              self.plan.dtype_policy, self.config.batch_size)

    def _stylize_group(self, members: list, pairs: list, callbacks) -> Iterator[PairResult]:
        """Stylizes one batch: `members` are (index, `_PlannedPair`) of pairs whose results share a size."""
        prepared = []
        for index, planned in members:
            try:
                prepared.append(self._prepare(index, *pairs[index], planned))
            except UsageError as error:
                yield PairResult(index, *pairs[index], error=error)
        yield from self._run_group(prepared, pairs, callbacks)

    def _run_group(self, prepared: list, pairs: list, callbacks) -> Iterator[PairResult]:
        """Stylizes loaded pairs (`_PreparedPair`) of one size together; yields each pair's result. A pair that
        diverged has its error and its last finite image, if any."""
        if not prepared:
            return
        try:
            results = self._run(prepared, callbacks, in_batch_run=True)
        except (DivergedError, OutOfMemory) as error:
            if len(prepared) == 1:
                image = (self._finish(error.image[0], prepared[0])
                         if isinstance(error, DivergedError) and error.image is not None else None)
                yield PairResult(prepared[0].index, *pairs[prepared[0].index], image=image, error=error)
                return
            # The images of a batch do not interact, but one non-finite image stops their common step, and a
            # batch may not fit where one image does: each runs again alone (to the same result it has in a
            # batch), so that only a pair that diverges, or does not fit on its own, fails.
            self._log(f"{error}; running the {len(prepared)} images of its batch one at a time")
            for pair in prepared:
                yield from self._run_group([pair], pairs, callbacks)
            return
        for pair, result in zip(prepared, results):
            yield PairResult(pair.index, *pairs[pair.index], image=result)

    def _planned_shapes(self, content, styles: list) -> _PlannedPair:
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
        height, width = scaled_size(*_image_size(content, "content image"), config.size)
        if config.content_masks is not None:
            self._check_masks(len(styles), height, width)
        first_level = pyramid.pyramid_of(config).first
        smallest_side = min(first_level.size_of(height, width))
        if smallest_side < vgg.MIN_INPUT_SIDE:
            raise UsageError(f"--size={config.size} (first scale {first_level.long_side}) makes the result "
                             f"{smallest_side} pixels on its short side; the network needs at least "
                             f"{vgg.MIN_INPUT_SIDE}: use a larger --size or --initial_size")
        style_long_side = pyramid.style_long_side(config.size, config.style_scale)
        style_sizes = [_image_size(style, "style image") for style in styles]
        style_shapes = [style_seen_size(*size, style_long_side) for size in style_sizes]
        self._say_where_styles_are_upscaled(styles, style_sizes, style_long_side)
        if config.content_masks is not None:
            self._check_style_masks(style_shapes)
            # Before resizing: resizing to a --size far too large would itself need gigabytes.
            return _PlannedPair(height, width, style_shapes, self._untiled(height, width, style_shapes))
        return _PlannedPair(height, width, style_shapes, tile_size_for(height, width, style_shapes, config, self.plan))

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
        """Refuses masks that do not match the styles, or that leave a region empty at the first scale."""
        config = self.config
        for name in ("content_masks", "style_masks"):
            given = getattr(config, name)
            if given is not None and len(given) != num_styles:
                raise UsageError(f"--{name} has {len(given)} masks for {num_styles} --style images; give one mask "
                                 "per style, in the same order")
        content_masks, _ = self._masks()
        first_size = pyramid.pyramid_of(config).first.size_of(height, width)
        for index, mask in enumerate(content_masks):
            self._require_region(mask, first_size, "--content_masks", index, "of the photo")

    def _check_style_masks(self, style_shapes: list) -> None:
        """Refuses a style mask that leaves its painting no region at the first scale."""
        first_level = pyramid.pyramid_of(self.config).first
        for index, (mask, shape) in enumerate(zip(self._masks()[1], style_shapes)):
            if mask is not None:
                first_size = first_level.style_size_of(*shape)
                self._require_region(mask, first_size, "--style_masks", index, "of its painting")

    def _require_region(self, mask: np.ndarray, size: tuple, flag: str, index: int, of_what: str) -> None:
        """Refuses a mask that no style layer sees any of at `size` (height, width), the first scale."""
        seen = masks.layer_masks(masks.resize_masks(mask[None], *size), self.config.network,
                                 self.config.style_layers, self.config.mask_mode)
        if not any(bool(np.any(each.numpy() > 0)) for each in seen.values()):
            given = getattr(self.config, flag[2:])[index]
            name = _describe(given) if isinstance(given, (str, os.PathLike)) else f"mask {index + 1}"
            raise UsageError(f"{flag}: {name} leaves no region {of_what} at the first scale ({size[1]}x{size[0]} px; "
                             f"--mask_mode={self.config.mask_mode}): paint a larger region, or use a larger "
                             "--initial_size")

    def _untiled(self, height: int, width: int, style_shapes: list) -> int:
        """0, the tile size of a run with masks: refuses one whose untiled step would not fit in memory."""
        if self.plan.device == "CPU":
            try:
                memory.require_fits(height, width, style_shapes, self.config.network,
                                    self.config.content_layers + self.config.style_layers, self.plan.dtype_policy)
            except UsageError as error:
                raise UsageError(f"--content_masks need an untiled run, and {error}") from None
        return 0

    def _say_where_styles_are_upscaled(self, styles: list, style_sizes: list, style_long_side: int) -> None:
        """Logs, once per style, that a style is seen larger than asked at the first scale(s): the network needs
        `vgg.MIN_INPUT_SIDE` pixels (see `config.style_seen_size`).

        Args:
            style_sizes: each style's (height, width) as given.
            style_long_side: the long side the styles are asked to be seen at, at the last scale.
        """
        first_scale = pyramid.pyramid_of(self.config).first.scale_factor
        for style, size in zip(styles, style_sizes):
            asked = scaled_size(*size, max(1, round(style_long_side * first_scale)))
            name = _describe(style)
            if min(asked) < vgg.MIN_INPUT_SIDE and name not in self._upscaled_styles:
                self._upscaled_styles.add(name)
                self._log(f"tf_style: style {name} would be {asked[1]}x{asked[0]} at the first scale, under the "
                          f"{vgg.MIN_INPUT_SIDE} pixels the network needs: it is seen upscaled to "
                          f"{vgg.MIN_INPUT_SIDE} px on its short side there (a larger --style_scale avoids it)")

    def _prepare(self, index: int, content, style, planned: _PlannedPair) -> _PreparedPair:
        """Loads a pair's images at the sizes `_planned_shapes` gave (`planned`), and its start image."""
        styles = _style_list(style)
        height, width, style_shapes = planned.height, planned.width, planned.style_shapes
        content_image = images.resize(images.load_image(content, "content image"), height, width)
        style_key = self._style_key(styles)
        if style_key not in self._style_images:
            self._style_images[style_key] = [images.resize(images.load_image(source, "style image"), *shape)
                                              for source, shape in zip(styles, style_shapes)]
        style_images = self._style_images[style_key]
        start_image = _start_image(self.config, content_image, style_images)
        prepared = _PreparedPair(index, content, content_image, style_images, start_image, style_key, planned.tile_size)
        if self.config.content_masks is not None:
            content_masks, style_masks = self._masks()
            prepared.content_masks = np.stack([masks.resize_masks(mask[None], height, width)[0]
                                               for mask in content_masks])
            prepared.style_masks = [None if mask is None else masks.resize_masks(mask[None], *shape)[0]
                                    for mask, shape in zip(style_masks, style_shapes)]
        return prepared

    def _style_key(self, styles: list) -> tuple:
        """The name under which a pair's styles are cached: paths by path, other objects by id.

        An id names an object only while it lives, so the objects are kept alive with the cache.
        """
        key = tuple(os.fspath(style) if isinstance(style, (str, os.PathLike)) else ("object", id(style))
                    for style in styles)
        self._style_sources[key] = styles
        return key

    def _run(self, prepared: list, callbacks, in_batch_run: bool = False, extra_terms: Sequence[Term] = (),
             extra_targets: Optional[dict] = None) -> np.ndarray:
        """Stylizes prepared pairs of one size together; returns their results, [B, H, W, 3].

        Args:
            in_batch_run: log a line that names the images, and keep the optimizations for the next batch of
                the same shape (a single run would only hold on to their memory).
            extra_terms, extra_targets: see `stylize`; runs with them keep their optimizations too (the frames
                of a video are many runs of one shape).
        """
        schedule = self._schedule()
        height, width = prepared[0].content_image.shape[:2]
        tile_size = prepared[0].tile_size
        if in_batch_run:
            self._log(f"stylizing {len(prepared)} image{'s' * (len(prepared) > 1)} at {width}x{height}: "
                      + ", ".join(_describe(pair.content_source) for pair in prepared))
        grid = schedule.tile_grid(height, width, tile_size)
        if grid is not None:
            tiled_scales = [size for size in pyramid.pyramid_of(self.config).long_sides if size > tile_size]
            self._log(f"tf_style: tiled: {grid.describe()} at {width}x{height} (the scales from {tiled_scales[0]} px "
                      f"run in tiles, the same loss and gradient as untiled)")
        results = schedule.run(
            np.stack([pair.content_image for pair in prepared]), [pair.style_images for pair in prepared],
            np.stack([pair.start_image for pair in prepared]), callbacks, indices=[pair.index for pair in prepared],
            style_keys=[pair.style_key for pair in prepared], keep_optimizations=in_batch_run or bool(extra_terms),
            tile_size=tile_size, content_masks=prepared[0].content_masks,
            style_masks=[pair.style_masks for pair in prepared], extra_terms=extra_terms, extra_targets=extra_targets)
        return np.stack([self._finish(result, pair) for result, pair in zip(results, prepared)])

    def _finish(self, result: np.ndarray, pair: _PreparedPair) -> np.ndarray:
        if self.config.original_colors:
            return color.transfer_luminance(result, pair.content_image)
        return result


def stylize(content, style, config: Optional[StyleConfig] = None, callbacks: Sequence[Callback] = (),
            log=print, **options) -> np.ndarray:
    """Paints `content` in the style of `style` (Gatys et al. 2016).

    Args:
        content: the photo: a path, a PIL image or an array ([H, W, 3] uint8 or floats in [0, 255]).
        style: the painting, in any of the same forms, or a list of them to blend (see
            `style_blend_weights`).
        config: a StyleConfig; `options` override its fields. None starts from the defaults.
        callbacks: called with a `StepReport` every `config.progress_every` steps, at every
            `config.save_every`-th step and at the end.
        log: where one-line notices (the compute plan) go; None for silence.
        **options: StyleConfig fields, e.g. `size=256, steps=200, style_weight=2.0`.

    Returns:
        The result, float32 [H, W, 3] in [0, 255], with the content's aspect ratio and long side `size`.

    Raises:
        UsageError: bad images or options.
        DivergedError: the optimization became non-finite (try a smaller learning rate).
        Interrupted: a KeyboardInterrupt arrived; `error.image` is the current result.

    Example:
        >>> import tf_style
        >>> result = tf_style.stylize("photo.jpg", ["a.jpg", "b.jpg"], size=256, style_blend_weights=(3, 7))
    """
    return Stylizer(config, log, **options).stylize(content, style, callbacks)


def stylize_batch(pairs: Sequence[tuple], config: Optional[StyleConfig] = None,
                  callbacks: Sequence[Callback] = (), log=print, **options) -> list:
    """Paints every (content, style) pair; pairs whose results have the same size are optimized together.

    Args:
        pairs: (content, style) tuples, each in any form `stylize` takes.
        config, callbacks, log, options: as for `stylize`; a report's `index` is its pair's position.

    Returns:
        A `PairResult` for each pair, in input order: its image, or the error that made it fail.

    Example:
        >>> results = tf_style.stylize_batch([("a.jpg", "starry.jpg"), ("b.jpg", "starry.jpg")], size=256)
        >>> [result.image.shape for result in results if result.error is None]
    """
    return Stylizer(config, log, **options).stylize_batch(pairs, callbacks)


def stylize_to_files(pairs: Sequence[tuple], output_dir: str, config: Optional[StyleConfig] = None,
                     overwrite: bool = False, contact_sheet: bool = False, logdir: Optional[str] = None,
                     callbacks: Sequence[Callback] = (), log=print, **options) -> list:
    """Paints every (content, style) pair of image paths into `<output_dir>/<content>__<style>.png`.

    A pair whose result exists is skipped unless `overwrite`, so a batch that was interrupted (or had failures
    fixed since) is finished by the same call. Each result is written as soon as its batch is done.

    Args:
        pairs: (content path, style path) tuples.
        output_dir: where the results go; created if missing.
        config, callbacks, log, options: as for `stylize_batch`.
        overwrite: redo the pairs whose result exists.
        contact_sheet: also write `<result>_sheet.png`: content | style | snapshots | result.
        logdir: write a TensorBoard run per result in this directory.

    Returns:
        A `FileResult` for each pair done, in the order they finished; skipped pairs have none.

    Example:
        >>> done = tf_style.stylize_to_files([("a.jpg", "starry.jpg"), ("b.jpg", "starry.jpg")], "out", size=256)
        >>> [result.pair.output for result in done if result.error is None]
    """
    listed = batch_pairs.named([(os.fspath(content), os.fspath(style)) for content, style in pairs], output_dir)
    require_writable_directory(output_dir, "results", "--output_dir")
    stylizer = Stylizer(config, log, **options)
    return list(stylizer.stylize_to_files(listed, overwrite, contact_sheet, logdir, callbacks))


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
                                   tiles.margin_of(config))


def _style_list(style) -> list:
    return list(style) if isinstance(style, (list, tuple)) else [style]


def _image_size(source, what: str) -> tuple:
    """(height, width) of an image given in any form `load_image` takes; files are read from the header."""
    if isinstance(source, (str, os.PathLike)):
        return images.image_file_size(os.fspath(source), what)
    return images.load_image(source, what).shape[:2]


def _describe(source) -> str:
    return os.path.basename(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else type(source).__name__


def _start_image(config: StyleConfig, content_image: np.ndarray, style_images: list) -> np.ndarray:
    """The start of the optimization at the output size, as `config.init` asks."""
    # The colour reference for the style-coloured starts is the most heavily weighted style.
    blend = config.style_blend_weights or (1.0,) * len(style_images)
    main_style = style_images[int(np.argmax(blend))]
    rng = np.random.default_rng(config.seed)
    if config.init == "content":
        return content_image.copy()
    if config.init == "noise":
        seed = config.seed if config.seed is not None else int(rng.integers(MAX_SEED, endpoint=True))
        return noise_start(*content_image.shape[:2], seed).numpy()
    if config.init == "style_noise":
        return color.colored_noise(content_image.shape, main_style, rng).astype(np.float32)
    if config.init == "style_colors":
        return color.match_color_statistics(content_image, main_style).astype(np.float32)
    return images.resize(images.load_image(config.init, "--init image"), *content_image.shape[:2])
