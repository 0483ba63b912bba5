"""The batched stylization as an Apache Beam pipeline, for jobs larger than one machine (`pip install tf_style[beam]`).

    MatchFiles(contents) × each style → GroupByKey(output name) → BatchElements → StylizeBatches → results
                                          └ two inputs, one name ┐              bad images ┘
                                                                 └──── _failures-*.jsonl ──┘

Videos among the contents (`--content_pattern='clips/*.mp4'`) go another way: each is split at its shot cuts
(`SplitAtShots`), the shots are stylized in parallel into the video's frame folder, each consistent within itself
(`StylizeShots`, the video mode's frame loop), and the video is encoded from the folder with the clip's sound once
every shot is done (`EncodeVideos`), as `<content>__<style>.mp4`. Videos are read from local paths.

The same pipeline runs on the DirectRunner, Dataflow, Flink or Spark; files are read and written through Beam's
`FileSystems`, so local paths, gs:// and s3:// all work. Each worker builds the network and reads the styles once
(`StylizeBatches.setup`); a batch of contents goes through `Stylizer.iter_stylize_batch`, whose same-size images
share one train step. A result is written under a temporary name and renamed to `<content>__<style>.png`, and
a result that exists is not redone: a retried bundle or a rerun job does only what is missing. A bad input
never fails the job: it becomes a line of the dead-letter file, with its path and the reason. A result the
machine will not take (a full disk) fails the bundle, as any worker fault does: a runner that retries bundles
retries it, and the launcher reports it in one line with the number of results written.
"""

import dataclasses
import itertools
import json
import logging
import os
import time
import uuid
from typing import Iterator, Optional, Sequence

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from tf_style import images
from tf_style.config import StyleConfig
from tf_style.errors import UsageError, WriteError
from tf_style.pairs import GLOB_CHARACTERS, Pair, is_video_path, output_name
from tf_style.sizes import ints, scaled_size
from tf_style.stylizer import Stylizer, unfinished
from tf_style.video import clips, shots
from tf_style.video.stylize import VideoStylizer, encode_frames, frames_dir_for

METRICS_NAMESPACE = "tf_style"
# The dead-letter file: one JSON object a line, {"path", "style", "reason"}, in the output directory.
FAILURES_PREFIX = "_failures"
FAILURES_SUFFIX = ".jsonl"

_FAILED = "failed"
_LOG = logging.getLogger(__name__)


class ResultNotWritten(WriteError):
    """A WriteError raised inside the pipeline: `ResultNotWritten.of(path, error)` has WriteError's message.

    Beam's runners re-raise a DoFn's exception as `type(error)(error.args[0] + " [while running '<step>']")`.
    This class's one argument is its message, so it survives that as itself, and `run` can tell the machine's
    fault from a bug.
    """

    def __init__(self, message: str):
        Exception.__init__(self, message)  # not WriteError's (path, error): the message is made already

    @classmethod
    def of(cls, path: str, error: Exception) -> "ResultNotWritten":
        return cls(str(WriteError(path, error)))


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """What a pipeline run did, from its Beam metrics.

    Attributes:
        images_done: results written.
        images_skipped: results that already existed (earlier runs, or an earlier attempt of a bundle).
        images_failed: pairs sent to the dead-letter file.
        seconds_per_image: mean wall seconds per written result, batch time shared by its images; None if none.
    """

    images_done: int
    images_skipped: int
    images_failed: int
    seconds_per_image: Optional[float] = None


def failures_pattern(output_dir: str) -> str:
    """The glob of the dead-letter files in `output_dir`."""
    return FileSystems.join(output_dir, f"{FAILURES_PREFIX}-*{FAILURES_SUFFIX}")


def build_pipeline(pipeline: beam.Pipeline, content_pattern: str, style_paths: Sequence[str], output_dir: str,
                   config: StyleConfig, overwrite: bool = False) -> None:
    """Adds the stylization of every content file × every style to `pipeline`.

    Args:
        pipeline: the pipeline to add the transforms to.
        content_pattern: a file pattern (glob) of content images, for `FileSystems.match`.
        style_paths: the style images; each content is stylized with each style separately.
        output_dir: where `<content>__<style>.png` results and the `_failures-*.jsonl` dead-letter file go.
        config: the options of the stylization; `batch_size` contents make one Beam batch.
        overwrite: redo results that exist (they are skipped otherwise).
    """
    style_paths = list(style_paths)
    pairs = (pipeline
             | "MatchContents" >> fileio.MatchFiles(content_pattern)
             | "PairWithStyles" >> beam.FlatMap(_pairs_of, style_paths, output_dir)
             # The shuffle spreads the pairs over the workers (a match comes out as one bundle) and brings
             # together inputs that would be written under one name.
             | "KeyByOutput" >> beam.Map(lambda pair: (pair.output, pair))
             | "GroupByOutput" >> beam.GroupByKey()
             | "OnePairPerOutput" >> beam.ParDo(_OnePairPerOutput()).with_outputs(_FAILED, main="pairs"))
    by_kind = pairs.pairs | "VideosApart" >> beam.Partition(lambda pair, _: int(is_video_path(pair.content)), 2)
    videos = by_kind[1] | "SplitAtShots" >> beam.ParDo(SplitAtShots(overwrite)).with_outputs(_FAILED, main="shots")
    stylized_shots = (videos.shots
                      # Shots of one clip go to different workers.
                      | "SpreadShots" >> beam.Reshuffle()
                      | "StylizeShots" >> beam.ParDo(StylizeShots(style_paths, config)))
    encoded = (stylized_shots
               | "ShotsByVideo" >> beam.GroupByKey()
               | "EncodeVideos" >> beam.ParDo(EncodeVideos()).with_outputs(_FAILED, main="written"))
    results = (by_kind[0]
               # For a CPU a fixed batch: Beam's adaptive sizing aims at batches of about 10 s, which one
               # image already exceeds, so it would never batch.
               | "Batch" >> beam.BatchElements(min_batch_size=config.batch_size, max_batch_size=config.batch_size)
               | "Stylize" >> beam.ParDo(StylizeBatches(style_paths, config, overwrite)).with_outputs(
                   _FAILED, main="written"))
    _ = ((pairs[_FAILED], results[_FAILED], videos[_FAILED], encoded[_FAILED])
         | "AllFailures" >> beam.Flatten()
         | "ToJson" >> beam.Map(json.dumps, sort_keys=True)
         # One shard, written even when empty, so that a rerun replaces the previous run's list.
         | "WriteFailures" >> beam.io.WriteToText(FileSystems.join(output_dir, FAILURES_PREFIX),
                                                  file_name_suffix=FAILURES_SUFFIX, num_shards=1,
                                                  shard_name_template="-SSSSS-of-NNNNN"))


def run(content_pattern: str, style_paths: Sequence[str], output_dir: str, config: StyleConfig,
        pipeline_args: Sequence[str] = (), overwrite: bool = False) -> RunSummary:
    """Checks the inputs, runs the pipeline until it finishes, and returns what it did.

    Args:
        content_pattern, style_paths, output_dir, config, overwrite: as for `build_pipeline`.
        pipeline_args: Beam pipeline options (`--runner=DataflowRunner`, `--direct_num_workers=2`, ...).

    Raises:
        UsageError: no content matches, a style cannot be read, the output directory cannot be written, or
            options a pipeline cannot use (checkpoints, blended styles).
        WriteError: a result could not be written (a full disk), on a runner that runs the bundles in this
            process (the DirectRunner's default); its message says how many results the output directory holds.
    """
    unknown = unknown_pipeline_args(pipeline_args)
    if unknown:
        raise UsageError(f"unknown flags {' '.join(unknown)}: neither tf_style flags nor Beam pipeline options; "
                         "check their spelling (see --helpfull, and Beam's pipeline options)")
    check_inputs(content_pattern, style_paths, output_dir, config)
    options = PipelineOptions(list(pipeline_args))
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, content_pattern, style_paths, output_dir, config, overwrite)
    try:
        result = pipeline.run()
        result.wait_until_finish()
    except ResultNotWritten as error:
        message = str(error).split(" [while running ")[0]
        pairs = [pair for metadata in _match(content_pattern) for pair in _pairs_of(metadata, style_paths, output_dir)]
        written = sum(FileSystems.exists(pair.output) for pair in pairs)
        raise ResultNotWritten(f"{message} (stopped with {written} of {len(pairs)} results written; the rerun "
                               "does the rest)") from None
    return summarize(result)


def unknown_pipeline_args(pipeline_args: Sequence[str]) -> list:
    """The arguments no Beam pipeline option takes: Beam only logs that it drops them, so a typo would pass."""
    parsers = []
    options_logger = logging.getLogger("apache_beam.options.pipeline_options")
    level = options_logger.level
    options_logger.setLevel(logging.ERROR)  # its "Discarding unparseable args" warning: the caller reports them
    try:
        # The hook hands over the parser Beam builds from every PipelineOptions class it knows.
        PipelineOptions(list(pipeline_args)).get_all_options(add_extra_args_fn=parsers.append)
    finally:
        options_logger.setLevel(level)
    return parsers[0].parse_known_args(list(pipeline_args))[1]


def check_inputs(content_pattern: str, style_paths: Sequence[str], output_dir: str, config: StyleConfig) -> None:
    """What can be checked before the job starts, so that a typo is a one-line error, not a failed job.

    Raises:
        UsageError: as `run`.
    """
    config.require_one_result_options_unset("a pipeline")
    if not style_paths:
        raise UsageError("--style: give at least one style image")
    if not any(character in content_pattern for character in GLOB_CHARACTERS) and os.path.isdir(content_pattern):
        raise UsageError(f"--content_pattern {content_pattern} is a directory; give a pattern such as "
                         f"{os.path.join(content_pattern, '*.jpg')} (quoted, so that the shell does not expand it)")
    if not _match(content_pattern, limit=1):
        raise UsageError(f"--content_pattern: no files match {content_pattern}; check the pattern (quote it, so "
                         "that the shell does not expand it)")
    names = {}
    for style in style_paths:
        read_image(style, "style image")
        name = output_name("", style)
        if name in names and names[name] != style:
            raise UsageError(f"--style: {names[name]} and {style} would give results of the same name; rename one")
        names[name] = style
    _require_writable(output_dir)


def summarize(result) -> RunSummary:
    """The RunSummary of a finished run, from its counters and its seconds-per-image distribution."""
    queried = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))

    def value(metric):
        # Runners that cannot commit metrics (some of the DirectRunner's modes) report only attempted ones.
        return metric.committed if metric.committed is not None else metric.attempted

    counters = {}
    for counter in queried["counters"]:
        counters[counter.key.metric.name] = counters.get(counter.key.metric.name, 0) + value(counter)
    seconds_per_image = None
    milliseconds = [value(distribution) for distribution in queried["distributions"]
                    if distribution.key.metric.name == "milliseconds_per_image"]
    total_count = sum(result.count for result in milliseconds if result is not None)
    if total_count:
        seconds_per_image = sum(result.sum for result in milliseconds if result is not None) / total_count / 1000
    return RunSummary(counters.get("images_done", 0), counters.get("images_skipped", 0),
                      counters.get("images_failed", 0), seconds_per_image)


def read_image(path: str, what: str):
    """Reads an image through Beam's FileSystems: float32 [H, W, 3] in [0, 255], as `images.load_image`.

    Raises:
        UsageError: the file is missing, a directory, unreadable, or not a usable image.
    """
    if not FileSystems.exists(path):
        raise UsageError(f"{what} {path} does not exist; check the path")
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as file:
            data = file.read()
    except (IsADirectoryError, PermissionError) as error:
        # Other errors (a network failure) are not the input's fault: they fail the bundle, which Beam retries.
        raise UsageError(f"{what} {path} cannot be read ({error.strerror or type(error).__name__}); give an "
                         "image file that can be read") from None
    return images.load_image_bytes(data, path, what)


def write_atomically(path: str, data: bytes, mime_type: str = "application/octet-stream") -> None:
    """Writes `data` to `path` through FileSystems: a temporary name in the same directory, then a rename.

    A reader, a retry or a rerun sees the whole file or none; a failed write leaves no temporary file.
    """
    directory, name = FileSystems.split(path)
    temporary = FileSystems.join(directory, f".{name}.{uuid.uuid4().hex}.tmp")
    try:
        with FileSystems.create(temporary, mime_type, CompressionTypes.UNCOMPRESSED) as file:
            file.write(data)
        FileSystems.rename([temporary], [path])
    except BaseException:
        if FileSystems.exists(temporary):
            FileSystems.delete([temporary])
        raise


class StylizeBatches(beam.DoFn):
    """Stylizes batches of `Pair`s: writes each result, and yields a failure record for each bad pair.

    The network and the style images are built and read once per DoFn instance (`setup`), and each style's
    statistics are computed once per scale by the Stylizer, for every batch the instance gets.

    Args:
        style_paths: every style the pairs may name.
        config: the options of the stylization.
        overwrite: redo results that exist (they are skipped otherwise).
    """

    def __init__(self, style_paths: Sequence[str], config: StyleConfig, overwrite: bool = False):
        self._style_paths = list(style_paths)
        self._config = config
        self._overwrite = overwrite
        self._done = Metrics.counter(METRICS_NAMESPACE, "images_done")
        self._skipped = Metrics.counter(METRICS_NAMESPACE, "images_skipped")
        self._failed = Metrics.counter(METRICS_NAMESPACE, "images_failed")
        # Beam distributions hold integers: milliseconds keep the seconds' fractions.
        self._milliseconds_per_image = Metrics.distribution(METRICS_NAMESPACE, "milliseconds_per_image")
        self._stylizer = None
        self._styles = None

    def setup(self):
        self._stylizer = Stylizer(self._config, log=_LOG.info)
        _ = self._stylizer.extractor  # built now, once, rather than inside the first bundle
        # The same array objects for every batch: the Stylizer caches a style's statistics under its identity.
        self._styles = {path: read_image(path, "style image") for path in self._style_paths}

    def process(self, batch: Sequence[Pair]) -> Iterator:
        start = time.perf_counter()
        todo, contents = [], []
        # Checked here, just before the work: a retried bundle skips what its first attempt finished.
        not_written = unfinished(batch, self._overwrite, FileSystems.exists)
        self._skipped.inc(len(batch) - len(not_written))
        for pair in not_written:
            try:
                content = read_image(pair.content, "content image")
            except UsageError as error:
                yield self._failure(pair, error)
                continue
            # Resized now rather than when its batch runs: a batch of 12-megapixel photos would hold 150 MB
            # of float32 pixels each. The Stylizer resizes to the same size, so it then leaves them alone.
            contents.append(images.resize(content, *ints(scaled_size(*content.shape[:2], self._config.size))))
            todo.append(pair)
        written = 0
        for outcome in self._stylizer.iter_stylize_batch(
                [(content, self._styles[pair.style]) for content, pair in zip(contents, todo)]):
            pair = todo[outcome.index]
            if outcome.error is not None:
                yield self._failure(pair, outcome.error)
                continue
            try:
                write_atomically(pair.output, images.encode_image(outcome.image, pair.output), "image/png")
            except OSError as error:  # the machine's fault, not the pair's: the next result would not fit either
                raise ResultNotWritten.of(pair.output, error) from None
            self._done.inc()
            written += 1
        if written:
            milliseconds = round(1000 * (time.perf_counter() - start) / written)
            for _ in range(written):
                self._milliseconds_per_image.update(milliseconds)

    def _failure(self, pair: Pair, error: Exception):
        self._failed.inc()
        _LOG.warning("skipped %s × %s: %s", pair.content, pair.style, error)
        return beam.pvalue.TaggedOutput(_FAILED, _failure_record(pair, error))


@dataclasses.dataclass(frozen=True)
class Shot:
    """Frames [first, end) of a clip, one shot: what one worker stylizes of a video pair.

    Attributes:
        pair: the clip, the style and the video to write.
        first, end: the shot's frames.
        num_frames: the clip's frames.
    """

    pair: Pair
    first: int
    end: int
    num_frames: int


class SplitAtShots(beam.DoFn):
    """A video pair -> its shots (`tf_style.video.shots`): a long clip is stylized shot by shot in parallel, each
    shot consistent within itself, as a shot starts over in a single run. A clip whose video exists is skipped.
    Videos are read from local paths (OpenCV opens files, not streams)."""

    def __init__(self, overwrite: bool = False):
        self._overwrite = overwrite
        self._failed = Metrics.counter(METRICS_NAMESPACE, "images_failed")
        self._skipped = Metrics.counter(METRICS_NAMESPACE, "images_skipped")

    def process(self, pair: Pair) -> Iterator:
        if not self._overwrite and FileSystems.exists(pair.output):
            self._skipped.inc()
            return
        num_frames = 0

        def counted(frames):
            nonlocal num_frames
            for num_frames, frame in enumerate(frames, start=1):
                yield frame

        try:
            # One pass over the clip: the cuts, and the frames counted as they go by.
            boundaries = shots.shot_boundaries(counted(clips.read_frames(pair.content)))
        except UsageError as error:
            self._failed.inc()
            yield beam.pvalue.TaggedOutput(_FAILED, _failure_record(pair, error))
            return
        starts = [0, *boundaries]
        for first, end in zip(starts, [*boundaries, num_frames]):
            yield Shot(pair, first, end, num_frames)


class StylizeShots(beam.DoFn):
    """Stylizes a shot's frames into the video's frame folder (`<output>.frames/`, as a single run's); yields
    (the video's output path, the shot). Frames the folder holds are not redone: a retried bundle or a rerun
    carries on."""

    def __init__(self, style_paths: Sequence[str], config: StyleConfig):
        self._style_paths = list(style_paths)
        self._config = config
        self._milliseconds_per_image = Metrics.distribution(METRICS_NAMESPACE, "milliseconds_per_image")
        self._stylizer = None
        self._styles = None

    def setup(self):
        self._stylizer = VideoStylizer(self._config, log=_LOG.info)
        self._styles = {path: read_image(path, "style image") for path in self._style_paths}

    def process(self, shot: Shot) -> Iterator:
        start = time.perf_counter()
        frames = itertools.islice(clips.read_frames(shot.pair.content), shot.first, shot.end)
        self._stylizer.stylize_frames(frames, self._styles[shot.pair.style], frames_dir_for(shot.pair.output),
                                      shot.num_frames, first_index=shot.first)
        milliseconds = round(1000 * (time.perf_counter() - start) / max(1, shot.end - shot.first))
        for _ in range(shot.end - shot.first):
            self._milliseconds_per_image.update(milliseconds)
        yield shot.pair.output, shot


class EncodeVideos(beam.DoFn):
    """(a video's output path, its stylized shots) -> the video, encoded from its frame folder with the clip's
    sound once every shot is done (`video.stylize.encode_frames`)."""

    def __init__(self):
        self._done = Metrics.counter(METRICS_NAMESPACE, "images_done")

    def process(self, keyed) -> Iterator:
        output, stylized = keyed
        stylized = list(stylized)
        pair, num_frames = stylized[0].pair, stylized[0].num_frames
        try:
            encode_frames(frames_dir_for(output), num_frames, output, pair.content)
        except WriteError as error:
            raise ResultNotWritten(str(error)) from None
        self._done.inc()


class _OnePairPerOutput(beam.DoFn):
    """Passes on the pair of each output name; inputs that share a name all fail, as the batch CLI refuses them."""

    def __init__(self):
        self._failed = Metrics.counter(METRICS_NAMESPACE, "images_failed")

    def process(self, keyed) -> Iterator:
        output, pairs = keyed
        pairs = sorted(set(pairs), key=lambda pair: (pair.content, pair.style))
        if len(pairs) == 1:
            yield pairs[0]
            return
        reason = UsageError(f"{', '.join(pair.content for pair in pairs)} would all be written to {output}; "
                            "rename all but one of them")
        for pair in pairs:
            self._failed.inc()
            yield beam.pvalue.TaggedOutput(_FAILED, _failure_record(pair, reason))


def _pairs_of(metadata, style_paths: Sequence[str], output_dir: str) -> list:
    return [Pair(metadata.path, style, FileSystems.join(output_dir, output_name(metadata.path, style)))
            for style in style_paths]


def _failure_record(pair: Pair, error: Exception) -> dict:
    return {"path": pair.content, "style": pair.style, "reason": str(error)}


def _match(pattern: str, limit: int = None) -> list:
    try:
        return FileSystems.match([pattern], limits=[limit])[0].metadata_list
    except ValueError as error:  # a scheme without its filesystem (gs:// without apache-beam[gcp])
        raise UsageError(f"{pattern}: {error}") from None


def _require_writable(output_dir: str) -> None:
    """Writes and deletes a probe file in `output_dir` (creating it if missing, on a local disk)."""
    probe = FileSystems.join(output_dir, f".tf_style_probe_{uuid.uuid4().hex}")
    try:
        write_atomically(probe, b"")
    except Exception as error:  # each filesystem has its own errors; all mean "cannot write there"
        raise UsageError(f"cannot write results in {output_dir} ({type(error).__name__}: {error}); choose a "
                         "writable location with --output_dir") from None
    FileSystems.delete([probe])
