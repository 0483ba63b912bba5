"""The pipeline program, `tf_style.beam_main` (its docstring is the program's usage).

It defines the stylize program's flags but those a pipeline has no use for, which it refuses with their reason
(`tf_style.cli.flags.REFUSED_BY_PIPELINE`), and hands the rest to `tf_style.beam.pipeline.run`.
"""

import logging
import sys
import time

from tf_style.cli.startup import native_stderr_silenced

with native_stderr_silenced():
    from tf_style.cli import flags as cli_flags
    from tf_style.cli.support import EXIT_INTERRUPTED, EXIT_SOME_FAILED, Program, quiet_logging, verbosity_given
    from tf_style.errors import UsageError
    try:
        from tf_style.beam import pipeline as beam_pipeline
    except ModuleNotFoundError as error:
        if not (error.name or "").startswith("apache_beam"):
            raise
        beam_pipeline = None  # reported by main() as a usage error

NAME = "tf_style.beam_main"


def main(argv, flag_values) -> int:
    if beam_pipeline is None:
        raise UsageError("Apache Beam is not installed; install tf_style with its beam extra: "
                         "pip install 'tf_style[beam]'")
    quiet_logging(flag_values)
    # The DirectRunner's multi-process mode repeats each worker's log line inside a protobuf dump; the worker
    # has printed it already. Errors still come through.
    logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)
    # A bundle's failure is logged, with its traceback, and then raised here: a full disk reaches the user
    # once, in one line, and a bug once, as its traceback.
    logging.getLogger("apache_beam.runners.common").setLevel(logging.CRITICAL)
    pipeline_args = argv[1:]
    for argument in pipeline_args:
        refusal = cli_flags.refused_pipeline_flag(argument)
        if refusal:
            raise UsageError(refusal)
    if not flag_values.content_pattern:
        raise UsageError("--content_pattern is required: a pattern of content images, e.g. 'photos/*.jpg'")
    config = cli_flags.config_from(flag_values)
    output_dir = flag_values.output_dir
    if not verbosity_given(flag_values) and not any(
            arg.startswith("--default_sdk_harness_log_level") for arg in pipeline_args):
        # Beam's workers log every step of their start-up at INFO; skipped inputs are WARNINGs.
        pipeline_args.append("--default_sdk_harness_log_level=WARNING")
    start = time.perf_counter()
    summary = beam_pipeline.run(flag_values.content_pattern, flag_values.style, output_dir, config,
                                pipeline_args=pipeline_args, overwrite=flag_values.overwrite)
    per_image = f" ({summary.seconds_per_image:.1f} s per image)" if summary.seconds_per_image is not None else ""
    print(f"wrote {summary.images_done} results to {output_dir} in {time.perf_counter() - start:.1f} s{per_image}; "
          f"skipped {summary.images_skipped} that existed"
          + (f"; {summary.images_failed} failed: see {beam_pipeline.failures_pattern(output_dir)}"
             if summary.images_failed else ""))
    return EXIT_SOME_FAILED if summary.images_failed else 0


def _interrupted() -> int:
    # Every result already renamed into place is complete; the rerun skips it.
    print(f"{NAME}: interrupted; the results written so far are kept, run the same command to do the rest",
          file=sys.stderr)
    return EXIT_INTERRUPTED


PROGRAM = Program(NAME, cli_flags.PIPELINE, main, on_interrupt=_interrupted, known_only=True)
