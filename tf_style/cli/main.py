"""The stylize program, `tf_style.main` (its docstring is the program's usage).

Turns the flags into a StyleConfig once (`tf_style.cli.flags.config_from`), calls `tf_style.stylize` (or, for a
batch of images and videos, `api.stylize_files`) and maps what happened to the exit statuses `tf_style.main` lists.

Signals are handled here, not in the library: the first SIGINT or SIGTERM raises KeyboardInterrupt, which the
optimization loop turns into an `Interrupted` error carrying the current image; later ones are only noted, so
that they cannot cut short the writing of that image.
"""

import signal
import sys
import time

from tf_style.cli.startup import native_stderr_silenced

with native_stderr_silenced():
    from tf_style import api, images
    from tf_style.optimization import checkpoint
    from tf_style import pairs as batch_pairs
    from tf_style.callbacks import ProgressBar
    from tf_style.cli import flags as cli_flags
    from tf_style.cli.support import (EXIT_DIVERGED, EXIT_SOME_FAILED, EXIT_WRITE_FAILED, Program, print_error,
                                      quiet_logging, require_no_arguments)
    from tf_style.config import StyleConfig
    from tf_style.errors import DivergedError, Interrupted, UsageError, WriteError
    from tf_style.files import require_writable_directory
    from tf_style.video import clips
    from tf_style.stylizer import ResultFiles
    from tf_style.video.stylize import FrameReport, frames_dir_for, stylize_video

NAME = "tf_style"


class _StopSignals:
    """Turns the first SIGINT or SIGTERM into a KeyboardInterrupt; later ones are only noted.

    Attributes:
        received: the number of the first signal received, or None.
    """

    NUMBERS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received = None
        self._deferring = False
        self._previous = {}

    def __enter__(self) -> "_StopSignals":
        self._previous = {number: signal.signal(number, self._handle) for number in self.NUMBERS}
        return self

    def __exit__(self, *exception) -> None:
        # A run in process (a test, a notebook) gives the handlers back.
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def defer(self) -> None:
        """From now on a signal is only noted: the result is being written and must not be cut short."""
        self._deferring = True

    def _handle(self, number, frame) -> None:
        if self.received is None:
            self.received = number
            if not self._deferring:
                raise KeyboardInterrupt

    @property
    def name(self) -> str:
        return signal.Signals(self.received or signal.SIGINT).name

    @property
    def exit_status(self) -> int:
        """128 + the signal number, as a shell reports a process that a signal ended: 130, 143."""
        return 128 + (self.received or signal.SIGINT)

    def interrupted_before_the_first_step(self) -> int:
        # Before the optimization started (checks, image loading, building the network).
        print(f"{NAME}: interrupted before the first step ({self.name}); nothing was written", file=sys.stderr)
        return self.exit_status


def main(argv, flag_values) -> int:
    stop_signals = _StopSignals()
    with stop_signals:
        try:
            return _main(argv, flag_values, stop_signals)
        except KeyboardInterrupt:
            return stop_signals.interrupted_before_the_first_step()


def _main(argv, flag_values, stop_signals: _StopSignals) -> int:
    quiet_logging(flag_values)
    require_no_arguments(argv)
    config = cli_flags.config_from(flag_values)
    if flag_values.logdir:
        require_writable_directory(flag_values.logdir, "TensorBoard logs", "--logdir")
    if batch_pairs.is_batch(flag_values.content, flag_values.style, flag_values.pairs):
        return _main_batch(flag_values, config, stop_signals)
    return _main_single(flag_values, config, stop_signals)


def _main_single(flag_values, config: StyleConfig, stop_signals: _StopSignals) -> int:
    content, style = flag_values.content, flag_values.style
    if batch_pairs.is_video_path(content):
        return _main_video(flag_values, config, stop_signals)
    output = flag_values.output or cli_flags.default_output(content, style)
    images.check_output_path(output)
    if config.checkpoint_dir:
        require_writable_directory(config.checkpoint_dir, "checkpoints", "--checkpoint_dir")
        saved = checkpoint.read_latest(config.checkpoint_dir)
        if saved is not None:
            print(f"found a checkpoint at step {saved.step} in {config.checkpoint_dir}", flush=True)
    files = ResultFiles(output, content, style, config, flag_values.logdir, flag_values.contact_sheet)
    final_losses = {}
    callbacks = [ProgressBar(), *files.callbacks, lambda report: final_losses.update(report.losses)]
    start = time.perf_counter()
    try:
        result = api.stylize(content, style, config, callbacks=callbacks)
    except Interrupted as error:
        stop_signals.defer()
        return _write_interrupted(output, error, config.checkpoint_dir, stop_signals)
    except DivergedError as error:
        stop_signals.defer()
        if error.image is None:
            print_error(NAME, f"{error}; no step gave a finite image, so nothing was written")
        else:
            images.save_image(output, error.image)
            print_error(NAME, f"{error}; wrote the last finite image (step {error.step} or before) to {output}")
        return EXIT_DIVERGED
    stop_signals.defer()
    files.write(result)
    losses_text = ", ".join(f"{name} {value:.4g}" for name, value in final_losses.items())
    print(f"wrote {output} ({result.shape[1]}x{result.shape[0]}) in {time.perf_counter() - start:.1f} s"
          f"{'; final losses: ' + losses_text if losses_text else ''}")
    return 0


def _main_video(flag_values, config: StyleConfig, stop_signals: _StopSignals) -> int:
    """Stylizes a video (`tf_style.video.stylize`) into a video file or a folder of frames; a rerun resumes."""
    content, style = flag_values.content, flag_values.style
    output = flag_values.output or cli_flags.default_output(content, style, ".mp4")
    frames_dir = frames_dir_for(output)
    done_before = len(clips.existing_frames(frames_dir))
    if done_before:
        print(f"resuming: {done_before} frames already stylized in {frames_dir}", flush=True)
    progress = _FrameProgress()
    start = time.perf_counter()
    try:
        count = stylize_video(content, style, output, config, log=lambda message: print(message, flush=True),
                              on_frame=progress)
    except KeyboardInterrupt:  # Interrupted during a frame's steps, or a bare one between them
        stop_signals.defer()
        progress.end_line()
        print(f"{NAME}: interrupted ({stop_signals.name}) after {progress.frames_done} frames; they are in "
              f"{frames_dir}: run the same command to resume", file=sys.stderr)
        return stop_signals.exit_status
    except DivergedError as error:
        stop_signals.defer()
        progress.end_line()
        print_error(NAME, f"frame {progress.frames_done}: {error}; the frames before it are in {frames_dir}")
        return EXIT_DIVERGED
    stop_signals.defer()
    progress.end_line()
    print(f"wrote {output} ({count} frames) in {time.perf_counter() - start:.1f} s")
    return 0


class _FrameProgress:
    """A line per frame (or one line rewritten, on a terminal): the frame, its time, and the time left."""

    def __init__(self):
        self.frames_done = 0
        self._stylized_seconds = []

    def __call__(self, report: FrameReport) -> None:
        self.frames_done = report.index + 1
        if report.resumed:
            return
        if not report.shot_start:
            self._stylized_seconds.append(report.seconds)
        total = f"/{report.num_frames}" if report.num_frames else ""
        left = ""
        if report.num_frames and self._stylized_seconds:
            seconds_per_frame = sum(self._stylized_seconds) / len(self._stylized_seconds)
            seconds_left = (report.num_frames - self.frames_done) * seconds_per_frame
            left = (f", about {seconds_left / 60:.1f} min left" if seconds_left >= 60
                    else f", about {seconds_left:.0f} s left")
        new_shot = " (new shot)" if report.shot_start else ""
        line = f"frame {self.frames_done}{total}: {report.seconds:.1f} s{new_shot}{left}"
        if sys.stdout.isatty():
            print(f"\r{line}\033[K", end="", flush=True)
        else:
            print(line, flush=True)

    def end_line(self) -> None:
        if sys.stdout.isatty() and self.frames_done:
            print()

    def next_video(self) -> None:
        """Ends the line of the video done (if any) and starts counting afresh for the next."""
        self.end_line()
        self.frames_done = 0
        self._stylized_seconds = []


def _main_batch(flag_values, config: StyleConfig, stop_signals: _StopSignals) -> int:
    """Stylizes every pair whose result is missing (`Stylizer.stylize_to_files`); see the module docstring."""
    output_dir = flag_values.output_dir
    if flag_values.pairs:
        listed = batch_pairs.read_pairs_file(flag_values.pairs, output_dir)
    else:
        listed = batch_pairs.all_pairs(flag_values.content, flag_values.style, output_dir)
    if flag_values["output"].present:
        raise UsageError("--output names one result; a batch run writes <output_dir>/<content>__<style>.png: "
                         "use --output_dir")
    config.require_one_result_options_unset("a batch run")
    require_writable_directory(output_dir, "results", "--output_dir")
    start = time.perf_counter()
    to_do = len(api.unfinished(listed, flag_values.overwrite))
    written, failed = 0, 0
    reasons = set()  # a bad image fails every pair it is in: its reason is printed once
    frame_progress = _FrameProgress()
    try:
        for outcome in api.stylize_files(listed, config, flag_values.overwrite, flag_values.contact_sheet,
                                         flag_values.logdir, callbacks=[ProgressBar()], on_frame=frame_progress,
                                         log=lambda message: print(message, flush=True)):
            pair = outcome.pair
            frame_progress.next_video()
            if outcome.error is not None:
                failed += 1
                reason = str(outcome.error) if str(outcome.error) not in reasons else "as above"
                reasons.add(str(outcome.error))
                kept = (f"; wrote its last finite image to {pair.output} (--overwrite redoes it)" if outcome.written
                        else "")
                print(f"{NAME}: skipped {pair.content} × {pair.style}: {reason}{kept}", file=sys.stderr, flush=True)
                continue
            written += 1
            print(f"wrote {pair.output}", flush=True)
    except KeyboardInterrupt:  # Interrupted during a step, or a bare one while loading images
        stop_signals.defer()
        if sys.stdout.isatty():
            print()  # ends the progress bar's line
        print(f"{NAME}: interrupted ({stop_signals.name}) after writing {written} of {to_do} results; run the same "
              "command to do the rest", file=sys.stderr)
        return stop_signals.exit_status
    except WriteError as error:
        # Not the pair's fault: the next result would not fit either. The results written are complete.
        stop_signals.defer()
        if sys.stdout.isatty():
            print()
        print_error(NAME, f"{error} (stopped after writing {written} of {to_do} results; the rerun does the rest)")
        return EXIT_WRITE_FAILED
    stop_signals.defer()
    print(f"wrote {written} results to {output_dir} in {time.perf_counter() - start:.1f} s"
          f"{f'; {failed} failed (see above)' if failed else ''}")
    return EXIT_SOME_FAILED if failed else 0


def _write_interrupted(output: str, error: Interrupted, checkpoint_dir, stop_signals: _StopSignals) -> int:
    """Writes the image an interrupted run carries, says where and at which step, returns the exit status."""
    if sys.stdout.isatty():
        print()  # ends the progress bar's line
    if error.image is None:
        print(f"{NAME}: {error} ({stop_signals.name}); nothing was written", file=sys.stderr)
        return stop_signals.exit_status
    images.save_image(output, error.image)
    resume = f"; run the same command to resume from the checkpoint in {checkpoint_dir}" if checkpoint_dir else ""
    print(f"{NAME}: {error} ({stop_signals.name}); wrote the current image to {output}{resume}", file=sys.stderr)
    return stop_signals.exit_status


PROGRAM = Program(NAME, cli_flags.STYLIZE, main)
