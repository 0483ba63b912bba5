"""The export program, `tf_style.export` (its docstring is the program's usage).

Reads the flags once into the arguments of `export_lib.export_feature_extractor`: the network options are
`StyleConfig`'s (`StyleConfig.network_options`), so the export builds the network `stylize()` builds for the
same flags.
"""

from tf_style.cli.startup import native_stderr_silenced

with native_stderr_silenced():
    from tf_style import export_lib
    from tf_style.cli import flags as cli_flags
    from tf_style.cli.support import Program, quiet_logging, require_no_arguments


def main(argv, flag_values) -> int:
    require_no_arguments(argv)
    quiet_logging(flag_values)
    version_dir = export_lib.export_feature_extractor(flag_values.export_dir, version=flag_values.version,
                                                      config=cli_flags.config_from(flag_values),
                                                      max_pixels=flag_values.max_pixels)
    print(f"wrote {version_dir} (signatures: {', '.join(export_lib.SIGNATURE_NAMES)})")
    return 0


PROGRAM = Program("tf_style.export", cli_flags.EXPORT, main)
