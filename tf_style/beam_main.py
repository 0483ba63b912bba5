"""Command line of the Beam pipeline: `python -m tf_style.beam_main --content_pattern=GLOB --output_dir=DIR`.

Takes tf_style's style flags (the same definitions as `tf_style.main`, so `--flagfile` presets work), and passes
every flag it does not know to Beam as a pipeline option (`--runner`, `--direct_num_workers`, Dataflow's
`--project`, ...); a flag neither knows is a usage error. Each content is stylized with each `--style`
separately into `<output_dir>/<content>__<style>.png`; results that exist are skipped unless `--overwrite`.

Exit codes: 0 done, 2 bad input (one line on stderr), 3 done but some inputs failed (listed, with the reason,
in `<output_dir>/_failures-*.jsonl`).
"""

import logging
import signal
import sys
import time

from absl import app, flags
from absl import logging as absl_logging

from tf_style import main as style_flags  # defines --style, --output_dir, --overwrite and the style flags
from tf_style.cli_support import exit_status, flags_parser_for, native_stderr_silenced

with native_stderr_silenced():
    from tf_style.errors import UsageError
    try:
        from tf_style.beam import pipeline as beam_pipeline
    except ModuleNotFoundError as error:
        if not (error.name or "").startswith("apache_beam"):
            raise
        beam_pipeline = None  # reported by main() as a usage error

PROGRAM = "tf_style.beam_main"

_CONTENT_PATTERN = flags.DEFINE_string(
    "content_pattern", None, "Beam pipeline: the content images, a file pattern (quoted: 'photos/*.jpg', "
    "'gs://bucket/photos/**'); local paths, gs:// and s3:// as Beam's FileSystems read them.")

# Flags of tf_style.main that a pipeline has no use for: refused, rather than silently ignored.
_SINGLE_RUN_FLAGS = {
    "content": "use --content_pattern", "output": "results go to --output_dir", "pairs": "use --content_pattern",
    "logdir": "a pipeline writes no TensorBoard events", "contact_sheet": "a pipeline writes results only",
    "save_every": "a pipeline writes results only", "checkpoint_dir": "a pipeline resumes by skipping "
    "finished results", "checkpoint_every": "a pipeline resumes by skipping finished results",
}


def main(argv) -> int:
    if beam_pipeline is None:
        raise UsageError("Apache Beam is not installed; install tf_style with its beam extra: "
                         "pip install 'tf_style[beam]'")
    if not flags.FLAGS["verbosity"].present:
        absl_logging.set_verbosity(absl_logging.WARNING)
    # The DirectRunner's multi-process mode repeats each worker's log line inside a protobuf dump; the worker
    # has printed it already. Errors still come through.
    logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)
    for name, reason in _SINGLE_RUN_FLAGS.items():
        if flags.FLAGS[name].present:
            raise UsageError(f"--{name} is not a pipeline flag: {reason}")
    if not _CONTENT_PATTERN.value:
        raise UsageError("--content_pattern is required: a pattern of content images, e.g. 'photos/*.jpg'")
    config = style_flags.config_from_flags()
    output_dir = flags.FLAGS.output_dir
    pipeline_args = argv[1:]
    if not flags.FLAGS["verbosity"].present and not any(
            arg.startswith("--default_sdk_harness_log_level") for arg in pipeline_args):
        # Beam's workers log every step of their start-up at INFO; skipped inputs are WARNINGs.
        pipeline_args.append("--default_sdk_harness_log_level=WARNING")
    start = time.perf_counter()
    summary = beam_pipeline.run(_CONTENT_PATTERN.value, flags.FLAGS.style, output_dir, config,
                                pipeline_args=pipeline_args, overwrite=flags.FLAGS.overwrite)
    per_image = f" ({summary.seconds_per_image:.1f} s per image)" if summary.seconds_per_image is not None else ""
    print(f"wrote {summary.images_done} results to {output_dir} in {time.perf_counter() - start:.1f} s{per_image}; "
          f"skipped {summary.images_skipped} that existed"
          + (f"; {summary.images_failed} failed: see {beam_pipeline.failures_pattern(output_dir)}"
             if summary.images_failed else ""))
    return style_flags.EXIT_SOME_FAILED if summary.images_failed else 0


def _main_or_usage_error(argv) -> None:
    sys.exit(exit_status(PROGRAM, lambda: main(argv), _interrupted))


def _interrupted() -> int:
    # Every result already renamed into place is complete; the rerun skips it.
    print(f"{PROGRAM}: interrupted; the results written so far are kept, run the same command to do the rest",
          file=sys.stderr)
    return 128 + signal.SIGINT


def run() -> None:
    """Console-script entry point (`tf-style-beam`)."""
    app.run(_main_or_usage_error, flags_parser=flags_parser_for(PROGRAM, known_only=True))


if __name__ == "__main__":
    run()
