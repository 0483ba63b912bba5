"""Command line: `python -m tf_style.export --export_dir=models/tf_style` writes a SavedModel for TF Serving.

Defines the flags, reads them once into the arguments of `export_lib.export_feature_extractor`, and maps
errors to exit codes: 0 written (its path on stdout), 2 bad input (one line on stderr, nothing written).
"""

from absl import app, flags, logging

from tf_style.cli_support import exit_status, flags_parser_for, native_stderr_silenced

with native_stderr_silenced():
    from tf_style import export_lib
    from tf_style.config import PADDING_MODES, POOLING_MODES, VGG16_CONV_LAYERS, WEIGHT_SOURCES, StyleConfig
    from tf_style.errors import UsageError

PROGRAM = "tf_style.export"
_DEFAULTS = StyleConfig()

_EXPORT_DIR = flags.DEFINE_string("export_dir", None, "TF Serving's model base path: the model is written to "
                                  "<export_dir>/<version>/. Created if missing.", required=True)
_VERSION = flags.DEFINE_integer("version", None, "Version number (subdirectory) to write; it must not exist. "
                                "Default: one more than the highest version in --export_dir (1 if none).")
_WEIGHTS = flags.DEFINE_string("weights", _DEFAULTS.weights,
                               f"VGG16 weights: {' or '.join(WEIGHT_SOURCES)} or a weights file path.")
_POOLING = flags.DEFINE_enum("pooling", _DEFAULTS.pooling, POOLING_MODES, "Pooling between VGG16 blocks.")
_PADDING = flags.DEFINE_enum("padding", _DEFAULTS.padding, PADDING_MODES,
                             "Padding of the convolutions; give the value the stylizations use, so that the "
                             "served Grams are theirs.")
_CONTENT_LAYERS = flags.DEFINE_list("content_layers", list(_DEFAULTS.content_layers),
                                    "Layers exported by serving_default besides the style layers, from: "
                                    f"{', '.join(VGG16_CONV_LAYERS)}.")
_STYLE_LAYERS = flags.DEFINE_list("style_layers", list(_DEFAULTS.style_layers),
                                  "Layers whose activations (serving_default) and Gram matrices (gram, "
                                  "image_bytes) are exported.")
_MAX_PIXELS = flags.DEFINE_integer("max_pixels", export_lib.DEFAULT_MAX_PIXELS,
                                   "The image_bytes signature refuses an image whose header claims more pixels "
                                   "than this, before decoding it.")


def main(argv) -> int:
    """Exports; returns the exit status, which absl's app.run passes to sys.exit."""
    return exit_status(PROGRAM, lambda: _export(argv))


def _export(argv) -> int:
    version_dir = export_from_flags(argv)
    print(f"wrote {version_dir} (signatures: {', '.join(export_lib.SIGNATURE_NAMES)})")
    return 0


def export_from_flags(argv) -> str:
    """The one place flags are read."""
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments {' '.join(argv[1:])}; flags take the form --name=value")
    # absl.app turns INFO logging on unless --verbosity is given, and tf.saved_model.save logs a dozen INFO
    # lines per export (renamed inputs, asset paths) that a user would read as problems.
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    config = StyleConfig(weights=_WEIGHTS.value, pooling=_POOLING.value, padding=_PADDING.value,
                         content_layers=tuple(_CONTENT_LAYERS.value), style_layers=tuple(_STYLE_LAYERS.value))
    return export_lib.export_feature_extractor(_EXPORT_DIR.value, version=_VERSION.value, config=config,
                                               max_pixels=_MAX_PIXELS.value)


def run() -> None:
    """Console-script entry point (`tf-style-export`)."""
    app.run(main, flags_parser=flags_parser_for(PROGRAM))


if __name__ == "__main__":
    run()
