"""Where a run's time goes, scale by scale: `python -m benchmarks.phases [--size=512 ...]` (any of `stylize()`'s
options as --name=value; the defaults otherwise), on the bundled pair.

It times the import of tf_style (TensorFlow's included), then the run in this process with a report after every
step, and prints for each scale its steps, the median step, and what its first step took beyond the median: the
scale's set-up (the targets at its size, the start moved up, the step's trace and oneDNN's first run; the
first scale's also builds the network and loads its weights). The sum of
the set-ups and the import is what a run costs beyond its evaluations.
"""

import statistics
import sys
import time


def parse_options(argv) -> dict:
    """--name=value arguments as `stylize()` options, integers and floats converted."""
    options = {}
    for argument in argv:
        name, _, value = argument.lstrip("-").partition("=")
        for convert in (int, float, str):
            try:
                options[name] = convert(value)
                break
            except ValueError:
                continue
    return options


def scale_phases(step_ends: list, start: float) -> list:
    """[(scale index, wall time of each of its steps)] from (time, scale index) at the end of every step."""
    phases, previous = {}, start
    for end, scale_index in step_ends:
        phases.setdefault(scale_index, []).append(end - previous)
        previous = end
    return sorted(phases.items())


def main(argv=None) -> int:
    options = parse_options(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    import tf_style
    from tf_style.api import SAMPLE_CONTENT, SAMPLE_STYLE

    imported = time.perf_counter()
    step_ends = []
    tf_style.stylize(SAMPLE_CONTENT, SAMPLE_STYLE, progress_every=1, log=None, **options,
                     callbacks=[lambda report: step_ends.append((time.perf_counter(), report.scale_index))])
    finished = time.perf_counter()
    print(f"import {imported - start:.1f} s; stylize {finished - imported:.1f} s, of which after the last step "
          f"{finished - step_ends[-1][0]:.1f} s")
    set_up_total = 0.0
    for scale_index, durations in scale_phases(step_ends, imported):
        median = statistics.median(durations[1:] or durations)
        set_up = durations[0] - median
        set_up_total += set_up
        print(f"scale {scale_index}: {len(durations)} steps, median step {median:.3f} s, steps {sum(durations):.1f} s,"
              f" set-up (first step beyond the median) {set_up:.1f} s")
    print(f"beyond the evaluations: import {imported - start:.1f} s + set-ups {set_up_total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
