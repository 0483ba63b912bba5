"""Every flag of every program, defined from one place.

The options of a stylization are `StyleConfig`'s fields: their flags are made from the fields' metadata (help,
choices, which programs take them), so a new option is one field in `config.py`. The flags of the programs'
own inputs and outputs (`--content`, `--output_dir`, `--export_dir`, ...) are `FlagSpec`s below. Each
program defines its flags on a `FlagValues` when it runs (not on import), so that the programs and the
benchmark can be imported together, and tests can run a program in process on a fresh `FlagValues`.
"""

import dataclasses
import os
import sys
import typing
from typing import Optional, Sequence

from absl import flags

from tf_style import api
from tf_style.config import StyleConfig
from tf_style.errors import UsageError
from tf_style.serving import feature_extractor, stylizer


@dataclasses.dataclass(frozen=True)
class FlagSpec:
    """One flag: what `define` passes to absl's DEFINE_* functions.

    Attributes:
        name: the flag's name, without the dashes.
        kind: "string", "integer", "float", "boolean", "enum" or "list" (comma-separated strings).
        default: its default value.
        help: what it does, as `--helpfull` shows it.
        choices: the values of an enum flag.
        required: absl refuses a command line without it.
        pipeline_refuses: why the Beam pipeline has no such flag; None if it takes it.
    """

    name: str
    kind: str
    default: object
    help: str
    choices: tuple = ()
    required: bool = False
    pipeline_refuses: Optional[str] = None


_DEFINERS = {"string": flags.DEFINE_string, "integer": flags.DEFINE_integer, "float": flags.DEFINE_float,
             "boolean": flags.DEFINE_boolean, "list": flags.DEFINE_list}


def define(flag_values: flags.FlagValues, specs: Sequence[FlagSpec], module_name: Optional[str] = None) -> None:
    """Defines `specs` on `flag_values`.

    Args:
        module_name: the module the flags belong to in absl's help; default the program's main module
            (`sys.argv[0]`, as absl names it), so that `--help` lists them.
    """
    module_name = module_name or sys.argv[0]
    for spec in specs:
        common = {"flag_values": flag_values, "module_name": module_name, "required": spec.required}
        if spec.kind == "enum":
            flags.DEFINE_enum(spec.name, spec.default, list(spec.choices), spec.help, **common)
        else:
            _DEFINERS[spec.kind](spec.name, spec.default, spec.help, **common)


def _config_flag(field: dataclasses.Field) -> FlagSpec:
    """The flag of a StyleConfig field, its kind read from the field's type and metadata."""
    metadata = field.metadata
    value_type = next((arg for arg in typing.get_args(field.type) if arg is not type(None)), field.type)
    if metadata["choices"]:
        kind = "enum"
    else:
        kind = {bool: "boolean", int: "integer", float: "float", str: "string", tuple: "list"}[value_type]
    default = list(field.default) if kind == "list" and field.default is not None else field.default
    return FlagSpec(field.name, kind, default, metadata["help"], choices=metadata["choices"],
                    pipeline_refuses=metadata["pipeline_refuses"])


STYLE_OPTIONS = tuple(_config_flag(field) for field in dataclasses.fields(StyleConfig) if field.metadata["flag"])
NETWORK_OPTIONS = tuple(spec for spec in STYLE_OPTIONS if spec.name in StyleConfig.network_options())

# Where results go unless a flag says otherwise: a directory that .gitignore lists, so that trying the program in
# a clone of the repository leaves the clone clean. It is created when missing.
OUTPUT_DIR = "out"


def default_output(content: str, styles: Sequence[str], extension: str = ".png") -> str:
    """Where a run of one result writes without --output: out/<content>_<style>[_<style>...].png (a video's,
    with `extension` ".mp4")."""
    stems = [os.path.splitext(os.path.basename(path))[0] for path in [content, *styles]]
    return os.path.join(OUTPUT_DIR, "_".join(stems) + extension)


# The inputs and outputs of a stylization (tf_style.main); the pipeline takes --style, --output_dir, --overwrite.
_RESULTS_ONLY = "a pipeline writes results only"
STYLIZE_INPUTS_AND_OUTPUTS = (
    FlagSpec("content", "string", api.SAMPLE_CONTENT, "Content image (the photo), or a video (.mp4, .mov, .mkv, "
             ".webm, ...: with the video extra) to stylize frame by frame into a video or a folder of frames. A "
             "directory or a quoted glob ('photos/*.jpg') makes a batch run. Default: the bundled sample photo.",
             pipeline_refuses="use --content_pattern"),
    FlagSpec("style", "list", [api.SAMPLE_STYLE], "Style image (the painting), or several separated by commas "
             "to blend. In a batch run each is a separate style (files, directories or globs). Default: the "
             "bundled sample painting."),
    FlagSpec("output", "string", None, "Where to write the result (.png, .jpg, ...; for a video, .mp4, .m4v, .mov, "
             ".mkv, or a folder for its frames). Default: "
             f"{OUTPUT_DIR}/<content>_<style>.png (.mp4 for a video). Missing directories are created.",
             pipeline_refuses="results go to --output_dir"),
    FlagSpec("pairs", "string", None, "Batch run over the pairs this file lists: one content,style per line "
             "(paths relative to the file), # comments.", pipeline_refuses="use --content_pattern"),
    FlagSpec("output_dir", "string", OUTPUT_DIR,
             "Batch run: results go to <output_dir>/<content>__<style>.png. Missing directories are created."),
    FlagSpec("overwrite", "boolean", False,
             "Batch run: redo pairs whose result already exists (they are skipped otherwise)."),
    FlagSpec("logdir", "string", None, "Write TensorBoard events here: losses and steps/s every few steps, the "
             "image every --save_every steps and at the end; one run per result.",
             pipeline_refuses="a pipeline writes no TensorBoard events"),
    FlagSpec("contact_sheet", "boolean", False, "Also write <output>_sheet.png: content | style(s) | snapshots | "
             "result side by side (snapshots with --save_every).", pipeline_refuses=_RESULTS_ONLY),
)
STYLIZE = STYLIZE_INPUTS_AND_OUTPUTS + STYLE_OPTIONS

PIPELINE = tuple(spec for spec in STYLIZE if spec.pipeline_refuses is None) + (
    FlagSpec("content_pattern", "string", None, "Beam pipeline: the content images, a file pattern (quoted: "
             "'photos/*.jpg', 'gs://bucket/photos/**'); local paths, gs:// and s3:// as Beam's FileSystems read "
             "them."),
)
# Flags of tf_style.main that a pipeline has no use for: refused, rather than passed to Beam and ignored.
REFUSED_BY_PIPELINE = {spec.name: spec.pipeline_refuses for spec in STYLIZE if spec.pipeline_refuses}

# What the export program writes (--model).
EXPORT_MODELS = ("feature_extractor", "stylizer")
# The flags that only --model=stylizer reads: the options every request runs with, and the requests' limits.
STYLIZER_EXPORT_ONLY = tuple(spec for spec in STYLE_OPTIONS if spec.name in stylizer.STYLIZER_OPTIONS) + (
    FlagSpec("max_size", "integer", stylizer.DEFAULT_MAX_SIZE, "--model=stylizer: the stylize signatures "
             "refuse a request whose size (the result's long side) is over this."),
    FlagSpec("max_steps", "integer", stylizer.DEFAULT_MAX_STEPS, "--model=stylizer: the stylize signatures "
             "refuse a request whose steps over all scales are more than this."),
)
EXPORT = (
    FlagSpec("model", "enum", EXPORT_MODELS[0], "What to export. feature_extractor: the VGG activations and "
             "Gram matrices. stylizer: the whole stylization, a stylize signature that runs the optimization; the "
             "style flags are what every request runs with (size, steps, the two weights, init and seed: its "
             "defaults).",
             choices=EXPORT_MODELS),
    FlagSpec("export_dir", "string", None, "TF Serving's model base path: the model is written to "
             "<export_dir>/<version>/. Created if missing.", required=True),
    FlagSpec("version", "integer", None, "Version number (subdirectory) to write; it must not exist. Default: "
             "one more than the highest version in --export_dir (1 if none)."),
    *NETWORK_OPTIONS,
    FlagSpec("max_pixels", "integer", feature_extractor.DEFAULT_MAX_PIXELS, "The signatures that take encoded images "
             "(image_bytes, stylize) refuse one whose header claims more pixels than this, before decoding it."),
    *STYLIZER_EXPORT_ONLY,
)


def config_from(flag_values: flags.FlagValues) -> StyleConfig:
    """The StyleConfig of the style options defined on `flag_values`; the others keep their defaults."""
    options = {}
    for field in dataclasses.fields(StyleConfig):
        if field.name not in flag_values:
            continue
        value = flag_values[field.name].value
        if isinstance(value, list):
            value = _numbers(field.name, value) if field.metadata["numbers"] else tuple(value)
        elif value == "" and field.default is None:
            value = None  # --checkpoint_dir= unsets it
        options[field.name] = value
    return StyleConfig(**options)


def _numbers(name: str, values: list) -> tuple:
    try:
        return tuple(float(value) for value in values)
    except ValueError:
        raise UsageError(f"--{name} must be numbers separated by commas, got {','.join(values)}") from None


def refused_pipeline_flag(argument: str) -> Optional[str]:
    """The error for a command-line argument naming a flag the pipeline refuses, or None."""
    if not argument.startswith("--"):
        return None
    name = argument[2:].split("=", 1)[0]
    if name not in REFUSED_BY_PIPELINE and name.startswith("no") and name[2:] in REFUSED_BY_PIPELINE:
        name = name[2:]  # --nocontact_sheet
    if name not in REFUSED_BY_PIPELINE:
        return None
    return f"--{name} is not a pipeline flag: {REFUSED_BY_PIPELINE[name]}"
