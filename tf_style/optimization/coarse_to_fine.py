"""The coarse-to-fine run through the levels of `tf_style.optimization.pyramid`, and the caches that let many runs
with one set of options share work.
"""

import dataclasses
import gc
import time
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tf_style.config import StyleConfig
from tf_style.errors import DivergedError, Interrupted, OutOfMemory
from tf_style.network.features import FeatureExtractor
from tf_style.objective import masks
from tf_style.objective.targets import StyleStatistics, batch_targets, face_targets, region_statistics, style_statistics
from tf_style.objective.terms import FaceTerm, Objective, Term, face_term, objective_for
from tf_style.optimization import pyramid
from tf_style.optimization.checkpoint import RunCheckpoints, run_fingerprint
from tf_style.optimization.level import Callback, Optimization, RunPlacement, interrupted_message
from tf_style.tiling import tiles


@dataclasses.dataclass(frozen=True)
class Batch:
    """What one coarse-to-fine run optimizes: images of one size, each with its styles.

    Attributes:
        content_images: float32 [B, H, W, 3] at the output size.
        style_images: for each content image, its style images, float32 [h, w, 3] each, as large as they will be
            seen at the last level.
        start_images: float32 [B, H, W, 3], the starts of the first level (resized to it), and where each later
            level takes the detail it adds to the upsampled result (`config.scale_detail`).
        indices: the `index` of each image in the reports.
        style_keys: a hashable name for each image's styles, under which their statistics at each level are kept
            for later runs (`CoarseToFine`).
        tile_size: run the levels larger than this tile by tile (`tf_style.tiling.tiles`; one image only), and see the
            styles larger than it tile by tile; 0: no tiles.
        content_masks: float32 [R, H, W] in [0, 1] at the output size, the same for every image: each of an
            image's R styles paints its own region (`tf_style.objective.masks`; no tiles); None: the styles blend.
        style_masks: with `content_masks`, for each content image, a float32 [h, w] mask of each of its style
            images' size (or None), the part of the style its region takes; `style_keys` name the styles with
            these. None: all of each style.
        face_masks: float32 [B, H, W] in [0, 1] at the output size, where each image's faces are
            (`tf_style.objective.faces`): the run adds the faces' content term (`terms.FaceTerm`, `config.face_weight`);
            None: no image has a face, or the term is off.
        extra_terms: loss terms besides the config's (`tf_style.objective.terms`; the video's temporal term), each
            bringing its targets: `extra_targets` {term name: targets at the output size}, which the term resizes
            to each level (`Term.targets_at`).
    """

    content_images: np.ndarray
    style_images: Sequence[Sequence[np.ndarray]]
    start_images: np.ndarray
    indices: Sequence[int]
    style_keys: Sequence
    tile_size: int = 0
    content_masks: Optional[np.ndarray] = None
    style_masks: Optional[Sequence[Sequence[Optional[np.ndarray]]]] = None
    face_masks: Optional[np.ndarray] = None
    extra_terms: Sequence[Term] = ()
    extra_targets: dict = dataclasses.field(default_factory=dict)


class OptimizationCache:
    """Optimizations kept by batch shape (B, H, W) and objective, so that the runs of a batch trace each shape's
    train step once (a trace takes seconds) and only restart the variables.

    Eviction: the least recently used shape goes once more than `capacity` are held. A batch run does one
    image size after another, in full batches and perhaps one smaller last batch, so two shapes per scale are
    all that can come again; each kept shape holds its variables' memory.

    Args:
        capacity: how many shapes to keep.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._by_shape = {}  # ((B, H, W), objective's key) -> Optimization, most recently used last

    def optimization(self, extractor: FeatureExtractor, objective: Objective, targets: dict, start: np.ndarray,
                     config: StyleConfig, jit_compile: bool, indices: Sequence[int]) -> Optimization:
        """An optimization of `start`'s shape starting from `start`: a kept one restarted, or a new one."""
        key = (start.shape[:3], objective.key)
        optimization = self._by_shape.pop(key, None)
        if optimization is None:
            optimization = Optimization(extractor, targets, start, config, jit_compile=jit_compile, indices=indices,
                                        objective=objective)
        else:
            optimization.restart(targets, start, indices)
        self._by_shape[key] = optimization
        while len(self._by_shape) > self.capacity:
            del self._by_shape[next(iter(self._by_shape))]
        return optimization

    def __len__(self) -> int:
        return len(self._by_shape)


class CoarseToFine:
    """Runs batches through every level of `pyramid.pyramid_of(config)`, for one network and one set of options.

    What it keeps between runs depends only on those, which is why it is tied to them: each style's statistics
    at each scale (under a key the caller names the styles by), and, for runs that ask for it, one
    `Optimization` per batch shape.

    Args:
        extractor: the VGG feature extractor.
        config: the options of every run.
        jit_compile: compile the train steps with XLA.
    """

    def __init__(self, extractor: FeatureExtractor, config: StyleConfig, jit_compile: bool = False):
        self.extractor = extractor
        self.config = config
        self.jit_compile = jit_compile
        self.pyramid = pyramid.pyramid_of(config)
        self._style_statistics = {}  # (style key, long side) -> StyleStatistics
        self.optimizations = OptimizationCache(capacity=2 * len(self.pyramid))

    def run(self, batch: Batch, callbacks: Sequence[Callback] = (), keep_optimizations: bool = False) -> np.ndarray:
        """Optimizes a batch at each level, starting each level from the last one's results.

        Args:
            batch: the images, their styles and what else the run takes (`Batch`).
            keep_optimizations: keep this run's optimizations for later runs of the same shape (a batch run);
                a single run would only hold on to their memory.

        Returns:
            float32 [B, H, W, 3] in [0, 255].

        Raises:
            DivergedError, Interrupted: as `Optimization.run`, with `error.image` the batch at the output size.
            OutOfMemory: TensorFlow could not allocate a step's tensors.
        """
        height, width = batch.content_images.shape[1:3]
        levels = self.pyramid
        objective = self.objective_of(batch)
        images = batch.start_images
        finished_images = None  # the results of the last finished scale, for an early stop in the next
        first_step = 1
        start_time = time.perf_counter()
        try:
            checkpoints = self._checkpoints_of(batch)
            resume = checkpoints.latest() if checkpoints is not None else None
            optimizer_state = None
            for level in levels:
                # Resuming skips the levels finished before the checkpoint; its own level starts from it.
                if resume is None or level.index >= resume.scale_index:
                    placement = RunPlacement(first_step, levels.total_steps, level.index, len(levels), start_time)
                    images, optimizer_state = self._run_level(level, batch, images, objective, optimizer_state,
                                                              placement, callbacks, keep_optimizations,
                                                              checkpoints, resume)
                    finished_images = images
                first_step += level.num_steps
        except (DivergedError, Interrupted) as error:
            # The caller gets images of the output size: this scale's, or the last finished scale's.
            error.image = _at_size(finished_images if error.image is None else error.image, height, width)
            raise
        except KeyboardInterrupt:
            raise Interrupted(interrupted_message(first_step - 1, levels.total_steps), first_step - 1,
                              _at_size(finished_images, height, width)) from None
        except tf.errors.ResourceExhaustedError:
            count = len(batch.content_images)
            raise OutOfMemory(f"the device ran out of memory for {count} image{'s' * (count > 1)} of {width}x{height} "
                              f"at once (step {first_step} or after): use a smaller --size, or free the memory "
                              "that other processes hold") from None
        return images

    def _checkpoints_of(self, batch: Batch) -> Optional[RunCheckpoints]:
        """The checkpoints of a one-image batch's run, under a fingerprint of everything that shapes its result;
        None without `config.checkpoint_dir`."""
        if not self.config.checkpoint_dir:
            return None
        if len(batch.content_images) != 1:
            raise ValueError(f"checkpoints hold one image's run; got a batch of {len(batch.content_images)}")
        return RunCheckpoints(self.config.checkpoint_dir, run_fingerprint(
            self.config, batch.content_images[0], batch.style_images[0], batch.start_images[0],
            self.extractor.compute_dtype, self.jit_compile, batch.content_masks,
            batch.style_masks[0] if batch.style_masks else None),
            self.config.checkpoint_every)

    def _run_level(self, level: pyramid.Level, batch: Batch, images: np.ndarray, objective: Objective,
                   optimizer_state, placement: RunPlacement, callbacks: Sequence[Callback], keep: bool,
                   checkpoints: Optional[RunCheckpoints], resume) -> tuple:
        """Runs one level from the last level's results `images` (its first step at `placement`), the optimizer
        warm-started from the last level's state (None: afresh), or from `resume`, a checkpoint taken at this
        level: (the level's results, its optimizer's state to carry up, or None)."""
        optimization = self.optimization_at(level, batch, images, objective, keep)
        if optimizer_state is not None:
            optimization.warm_start(optimization.optimizer.carried_up(optimizer_state,
                                                                      *optimization.image.shape[1:3]))
        if checkpoints is not None:
            checkpoints.track(optimization.state(), level.index)
            if resume is not None and level.index == resume.scale_index:
                checkpoints.restore(resume)
        done = optimization.completed_steps()
        placement = dataclasses.replace(placement, first_step=placement.first_step + done)
        images = optimization.run(level.num_steps - done, callbacks, placement, checkpoints)
        optimizer_state = optimization.optimizer_state() if self.config.warm_start_optimizer else None
        # The traced step keeps the optimization in a reference cycle: free its tensors now, not while the next,
        # larger scale is using memory.
        del optimization
        gc.collect()
        return images, optimizer_state

    def objective_of(self, batch: Batch) -> Objective:
        """The objective of a batch's run: the config's terms, the faces' if it has faces, and the batch's own
        (`Batch.extra_terms`)."""
        faces = () if batch.face_masks is None else (face_term(self.config),)
        return objective_for(self.config).with_terms(*faces, *batch.extra_terms)

    def optimization_at(self, level: pyramid.Level, batch: Batch, images: Optional[np.ndarray] = None,
                        objective: Optional[Objective] = None, keep: bool = False) -> Optimization:
        """The optimization of `batch` at one level, starting from `images` (the last level's results, or None
        for the batch's starts) moved up to it; `objective` is `objective_of(batch)` if None. With `keep`, an
        untiled optimization comes from (and stays in) the cache of optimizations by shape."""
        config = self.config
        objective = objective if objective is not None else self.objective_of(batch)
        height, width = level.size_of(*batch.content_images.shape[1:3])
        grid = self.tile_grid(height, width, batch.tile_size)
        targets = self.targets_at(level, batch)
        start = level.start(batch.start_images if images is None else images, batch.start_images,
                            config.scale_detail)
        if keep and grid is None:
            return self.optimizations.optimization(self.extractor, objective, targets, start, config,
                                                   self.jit_compile, batch.indices)
        return Optimization(self.extractor, targets, start, config, jit_compile=self.jit_compile,
                            indices=batch.indices, tiles=grid, objective=objective)

    def targets_at(self, level: pyramid.Level, batch: Batch) -> dict:
        """{term name: targets} of `batch` at one level (tile by tile where the level runs in tiles)."""
        height, width = level.size_of(*batch.content_images.shape[1:3])
        grid = self.tile_grid(height, width, batch.tile_size)
        content_masks = batch.content_masks
        if grid is not None and len(batch.content_images) != 1:
            raise ValueError(f"a tiled optimization holds one image; got a batch of {len(batch.content_images)}")
        if grid is not None and content_masks is not None:
            raise ValueError("region masks need an untiled optimization (tf_style.api refuses tiles with masks)")
        style_masks = None
        if content_masks is not None:
            style_masks = batch.style_masks or [[None] * len(styles) for styles in batch.style_images]
            content_masks = masks.resize_masks(content_masks, height, width)
        statistics = [self._statistics_at(key, styles, level, batch.tile_size,
                                          style_masks[index] if style_masks is not None else None)
                      for index, (key, styles) in enumerate(zip(batch.style_keys, batch.style_images))]
        targets = batch_targets(self.extractor, _at_size(batch.content_images, height, width), statistics,
                                self.config, grid, content_masks)
        if batch.face_masks is not None:
            targets[FaceTerm.name] = face_targets(targets["content"], batch.face_masks)
        targets.update({term.name: term.targets_at(batch.extra_targets[term.name], height, width)
                        for term in batch.extra_terms})
        return targets

    def tile_grid(self, height: int, width: int, tile_size: int) -> Optional[tiles.TileGrid]:
        """The tiles of a height x width level at `tile_size` (see `Batch`), or None where it runs untiled."""
        if not tile_size or max(height, width) <= tile_size:
            return None
        return tiles.tile_grid(height, width, tile_size, tiles.margin_of(self.config))

    def _statistics_at(self, key, styles: Sequence[np.ndarray], level: pyramid.Level, tile_size: int,
                       style_masks: Optional[Sequence[Optional[np.ndarray]]]) -> StyleStatistics:
        """The statistics of `styles` (as seen at the last level) seen at `level`, computed once: blended
        (styles larger than `tile_size`, if not 0, tile by tile), or with `style_masks` (one for each style, or
        None), one region each (`region_statistics`)."""
        if (key, level.long_side) not in self._style_statistics:
            sizes = [level.style_size_of(*style.shape[:2]) for style in styles]
            scaled_styles = [pyramid.resize_image(style, *size) for style, size in zip(styles, sizes)]
            if style_masks is None:
                statistics = style_statistics(self.extractor, scaled_styles, self.config,
                                              self.config.style_blend_weights, tile_size)
            else:
                scaled_masks = [None if mask is None else masks.resize_masks(mask[None], *size)[0]
                                for mask, size in zip(style_masks, sizes)]
                statistics = region_statistics(self.extractor, scaled_styles, scaled_masks, self.config)
            self._style_statistics[key, level.long_side] = statistics
        return self._style_statistics[key, level.long_side]


def _at_size(images: Optional[np.ndarray], height: int, width: int):
    return None if images is None else pyramid.resize_image(images, height, width)
