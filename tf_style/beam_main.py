"""Beam pipeline: `python -m tf_style.beam_main --content_pattern=GLOB --output_dir=DIR` (or `tf-style-beam`).

Takes the stylize program's style flags (the same definitions, so `--flagfile` presets work) except those a
pipeline has no use for, which it refuses with the reason (`cli.flags.REFUSED_BY_PIPELINE`); every other flag
it does not know goes to Beam as a pipeline option (`--runner`, `--direct_num_workers`, Dataflow's `--project`,
...), and a flag neither knows is a usage error. Each content is stylized with each `--style` separately into
`<output_dir>/<content>__<style>.png`; results that exist are skipped unless `--overwrite`.

Exit codes: 0 done, 2 bad input (one line on stderr), 3 done but some inputs failed (listed, with the reason,
in `<output_dir>/_failures-*.jsonl`), 4 a result could not be written (a full disk: one line, with how many
results are written; a rerun does the rest).

The program is `tf_style.cli.beam`; this module hands over to it.
"""

from tf_style.cli.beam import PROGRAM


def run() -> None:
    """Console-script entry point (`tf-style-beam`)."""
    PROGRAM.run()


if __name__ == "__main__":
    run()
