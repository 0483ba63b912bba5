"""The Python API: `stylize()` paints one content image in a style; `stylize_batch()` paints many pairs;
`stylize_to_files()` writes a batch's results, images and videos alike, as files and, run again, does only the
pairs still missing.

The command line is a thin shell around these functions (a batch run is one call of `stylize_files`), so a
notebook gets exactly what the CLI gets. They run on a `tf_style.stylizer.Stylizer`, which holds what several
stylizations with one set of options share.
"""

import os
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from tf_style import pairs as batch_pairs
from tf_style.config import StyleConfig
from tf_style.errors import DivergedError, UsageError
from tf_style.files import require_writable_directory
from tf_style.optimization.level import Callback
from tf_style.stylizer import FileResult, PairResult, Stylizer, unfinished
from tf_style.video.stylize import FrameReport, stylize_video

SAMPLES_DIR = os.path.join(os.path.dirname(__file__), "samples")
SAMPLE_CONTENT = os.path.join(SAMPLES_DIR, "photos", "tubingen.jpg")
SAMPLE_STYLE = os.path.join(SAMPLES_DIR, "paintings", "starry_night.jpg")

__all__ = ["FileResult", "PairResult", "Stylizer", "stylize", "stylize_batch", "stylize_files", "stylize_to_files"]


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



def stylize_files(listed: Sequence[batch_pairs.Pair], config: StyleConfig, overwrite: bool = False,
                  contact_sheet: bool = False, logdir: Optional[str] = None, callbacks: Sequence[Callback] = (),
                  on_frame: Optional[Callable[[FrameReport], None]] = None, log=print) -> Iterator[FileResult]:
    """Stylizes the listed pairs whose result is missing, images and videos alike, and writes each result as soon
    as it is done: the images in batches (`Stylizer.stylize_to_files`), then each video frame by frame
    (`stylize_video`: a rerun resumes a video from its first missing frame).

    Yields a `FileResult` for each pair done (written or failed); an interrupted run keeps the results already
    written, and the same call does the rest.

    Args:
        listed: the pairs, each with the path of its result (`tf_style.pairs`); a pair whose content is a video
            (`pairs.is_video_path`) writes a video.
        config: the options of every pair.
        overwrite, contact_sheet, logdir: as for `stylize_to_files` (the last two for images only).
        callbacks: called with the reports of each image's optimization; a report's `index` is its pair's
            position among the images still to do.
        on_frame: called with a `FrameReport` after each frame of a video.
        log: where one-line notices go; None for silence.

    Raises:
        WriteError: a result could not be written (not a pair's fault: the next would not fit either).
        Interrupted, KeyboardInterrupt: the run was stopped; the results written are complete.
    """
    todo = unfinished(listed, overwrite)
    if len(todo) < len(listed) and log is not None:
        log(f"skipping {len(listed) - len(todo)} of {len(listed)} pairs whose results exist (--overwrite redoes "
            "them)")
    stills = [pair for pair in todo if not batch_pairs.is_video_path(pair.content)]
    if stills:
        yield from Stylizer(config, log).stylize_to_files(stills, overwrite, contact_sheet, logdir, callbacks)
    for pair in todo:
        if batch_pairs.is_video_path(pair.content):
            try:
                stylize_video(pair.content, pair.style, pair.output, config, log=log, on_frame=on_frame)
            except (UsageError, DivergedError) as error:
                yield FileResult(pair, error, written=False)
                continue
            yield FileResult(pair, None, written=True)


def stylize_to_files(pairs: Sequence[tuple], output_dir: str, config: Optional[StyleConfig] = None,
                     overwrite: bool = False, contact_sheet: bool = False, logdir: Optional[str] = None,
                     callbacks: Sequence[Callback] = (), on_frame: Optional[Callable[[FrameReport], None]] = None,
                     log=print, **options) -> list:
    """Paints every (content, style) pair of paths into `<output_dir>/<content>__<style>.png`, or, where the
    content is a video, `<output_dir>/<content>__<style>.mp4` (the `video` extra).

    A pair whose result exists is skipped unless `overwrite`, so a batch that was interrupted (or had failures
    fixed since) is finished by the same call. Each result is written as soon as it is done.

    Args:
        pairs: (content path, style path) tuples.
        output_dir: where the results go; created if missing.
        config, callbacks, log, options: as for `stylize_batch`.
        overwrite: redo the pairs whose result exists.
        contact_sheet: also write `<result>_sheet.png` for an image: content | style | snapshots | result.
        logdir: write a TensorBoard run per image result in this directory.
        on_frame: called with a `FrameReport` after each frame of a video.

    Returns:
        A `FileResult` for each pair done, in the order they finished; skipped pairs have none.

    Example:
        >>> done = tf_style.stylize_to_files([("a.jpg", "starry.jpg"), ("clip.mp4", "starry.jpg")], "out", size=256)
        >>> [result.pair.output for result in done if result.error is None]
    """
    listed = batch_pairs.named([(os.fspath(content), os.fspath(style)) for content, style in pairs], output_dir)
    require_writable_directory(output_dir, "results", "--output_dir")
    config = config.replace(**options) if config is not None else StyleConfig(**options)
    return list(stylize_files(listed, config, overwrite, contact_sheet, logdir, callbacks, on_frame, log))
