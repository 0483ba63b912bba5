"""The `Stylizer`: stylizations of still images with one set of options, one at a time, in batches or to files;
what a result's files are (`ResultFiles`: the image, its snapshots, its TensorBoard run, its contact sheet) and
what a batch run to files means (skip the results that exist unless `overwrite`). The functions of the Python
API (`tf_style.api`) run on it, and a video's frames (`tf_style.video.stylize`) too.

A `Stylizer` is the facade over the three parts of a run: `planner.Planner` plans and loads the pairs (sizes,
tiles, batches, what to refuse), `coarse_to_fine.CoarseToFine` runs a batch through the pyramid's levels, and
`core.step` is each step (the served SavedModel runs the same step). It holds what several stylizations with
one set of options share: the network, built once, and each style's statistics at each level, computed once.
"""

import dataclasses
import os
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from tf_style import color, images
from tf_style import pairs as batch_pairs
from tf_style.callbacks import ForEachImage, SnapshotSaver, TensorBoardLogger
from tf_style.config import StyleConfig
from tf_style.errors import DivergedError, Interrupted, OutOfMemory, UsageError
from tf_style.network.device import ComputePlan, plan_compute
from tf_style.network.features import FeatureExtractor, extractor_for
from tf_style.objective.terms import Term
from tf_style.optimization import pyramid
from tf_style.optimization.coarse_to_fine import CoarseToFine
from tf_style.optimization.level import Callback
from tf_style.planner import Planner, PreparedPair, batch_of, describe, style_list

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


class Stylizer:
    """Stylizes with one set of options, building the network once for all the images it is given.

    Args:
        config: a StyleConfig; `options` override its fields. None starts from the defaults.
        log: where one-line notices go (the compute plan, each batch); None for silence.
        plan: how the steps run (`device.ComputePlan`); None: as `plan_compute` chooses for the config.
        **options: StyleConfig fields, e.g. `size=256, steps=200, style_weight=2.0`.
    """

    def __init__(self, config: Optional[StyleConfig] = None, log=print, plan: Optional[ComputePlan] = None,
                 **options):
        self.config = config.replace(**options) if config is not None else StyleConfig(**options)
        self.plan = plan if plan is not None else plan_compute(self.config.precision, self.config.xla)
        self._log = log or (lambda message: None)
        self.planner = Planner(self.config, self.plan, self._log)
        self._coarse_to_fine = None
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
        other = Stylizer(config, log=log, plan=self.plan)
        other._network_of = self
        return other

    @property
    def extractor(self) -> FeatureExtractor:
        """The VGG feature extractor, built on first use."""
        return self.coarse_to_fine.extractor

    @property
    def coarse_to_fine(self) -> CoarseToFine:
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
            extra_terms: loss terms besides the config's (`tf_style.objective.terms`), with `extra_targets` {term
                name: its targets at the result's size, batch 1} (see `coarse_to_fine.Batch`).
        """
        pair = self.planner.prepare(0, content, style, self.planner.plan_pair(content, style_list(style)))
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
        groups = {}  # (height, width, tile size) -> [(index, PairPlan)], in input order
        for index, (content, style) in enumerate(pairs):
            try:
                planned = self.planner.plan_pair(content, style_list(style))
            except UsageError as error:
                yield PairResult(index, content, style, error=error)
                continue
            groups.setdefault((planned.height, planned.width, planned.tile_size), []).append((index, planned))
        for (height, width, tile_size), members in groups.items():
            style_shapes = [shape for _, planned in members for shape in planned.style_shapes]
            # A tiled run holds one image: its tiles take the memory that a batch would.
            batch_size = 1 if tile_size else self.planner.batch_size(height, width, style_shapes)
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

    def _stylize_group(self, members: list, pairs: list, callbacks) -> Iterator[PairResult]:
        """Stylizes one batch: `members` are (index, `PairPlan`) of pairs whose results share a size."""
        prepared = []
        for index, planned in members:
            try:
                prepared.append(self.planner.prepare(index, *pairs[index], planned))
            except UsageError as error:
                yield PairResult(index, *pairs[index], error=error)
        yield from self._run_group(prepared, pairs, callbacks)

    def _run_group(self, prepared: list, pairs: list, callbacks) -> Iterator[PairResult]:
        """Stylizes loaded pairs (`PreparedPair`) of one size together; yields each pair's result. A pair that
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

    def _run(self, prepared: list, callbacks, in_batch_run: bool = False, extra_terms: Sequence[Term] = (),
             extra_targets: Optional[dict] = None) -> np.ndarray:
        """Stylizes prepared pairs of one size together; returns their results, [B, H, W, 3].

        Args:
            in_batch_run: log a line that names the images, and keep the optimizations for the next batch of
                the same shape (a single run would only hold on to their memory).
            extra_terms, extra_targets: see `stylize`; runs with them keep their optimizations too (the frames
                of a video are many runs of one shape).
        """
        runner = self.coarse_to_fine
        height, width = prepared[0].content_image.shape[:2]
        tile_size = prepared[0].tile_size
        if in_batch_run:
            self._log(f"stylizing {len(prepared)} image{'s' * (len(prepared) > 1)} at {width}x{height}: "
                      + ", ".join(describe(pair.content_source) for pair in prepared))
        grid = runner.tile_grid(height, width, tile_size)
        if grid is not None:
            tiled_scales = [size for size in runner.pyramid.long_sides if size > tile_size]
            self._log(f"tf_style: tiled: {grid.describe()} at {width}x{height} (the scales from {tiled_scales[0]} px "
                      f"run in tiles, the same loss and gradient as untiled)")
        batch = batch_of(prepared, extra_terms, extra_targets)
        results = runner.run(batch, callbacks, keep_optimizations=in_batch_run or bool(extra_terms))
        return np.stack([self._finish(result, pair) for result, pair in zip(results, prepared)])

    def _finish(self, result: np.ndarray, pair: PreparedPair) -> np.ndarray:
        if self.config.original_colors:
            return color.transfer_luminance(result, pair.content_image)
        return result
