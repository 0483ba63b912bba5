"""The export program, `tf_style.export` (its docstring is the program's usage).

Reads the flags once into the arguments of `feature_extractor.export_feature_extractor` or, with `--model=stylizer`,
`stylizer.export_stylizer`: the options are `StyleConfig`'s, so the export builds the network (and the
stylizer runs the optimization) that `stylize()` builds and runs for the same flags.
"""

from tf_style.cli.startup import native_stderr_silenced

with native_stderr_silenced():
    from tf_style.serving import feature_extractor, stylizer
    from tf_style.cli import flags as cli_flags
    from tf_style.cli.support import Program, quiet_logging, require_no_arguments
    from tf_style.errors import UsageError


def main(argv, flag_values) -> int:
    require_no_arguments(argv)
    quiet_logging(flag_values)
    config = cli_flags.config_from(flag_values)
    if flag_values.model == "stylizer":
        version_dir = stylizer.export_stylizer(
            flag_values.export_dir, version=flag_values.version, config=config, max_pixels=flag_values.max_pixels,
            max_size=flag_values.max_size, max_steps=flag_values.max_steps)
        signature_names = stylizer.SIGNATURE_NAMES
    else:
        # Refused rather than ignored: the feature extractor runs no optimization.
        given = [spec.name for spec in cli_flags.STYLIZER_EXPORT_ONLY if flag_values[spec.name].present]
        if given:
            raise UsageError(f"--{given[0]} is a flag of --model=stylizer; add --model=stylizer or drop --{given[0]}")
        version_dir = feature_extractor.export_feature_extractor(flag_values.export_dir, version=flag_values.version,
                                                          config=config, max_pixels=flag_values.max_pixels)
        signature_names = feature_extractor.SIGNATURE_NAMES
    print(f"wrote {version_dir} (signatures: {', '.join(signature_names)})")
    return 0


PROGRAM = Program("tf_style.export", cli_flags.EXPORT, main)
