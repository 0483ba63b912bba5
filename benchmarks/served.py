"""What one stylization costs served from the stylizer SavedModel, against the same run through the CLI
(`measure_served`, `python -m benchmarks.bench --served`), and its printed comparison (`format_served`).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Sequence

import tensorflow as tf

from benchmarks.cli_runs import last_error_line, preset_flags, time_preset
from benchmarks.report import machine_load
from tf_style import api
from tf_style.cli.flags import STYLE_OPTIONS, config_from, define
from tf_style.config import StyleConfig
from tf_style.optimization.pyramid import pyramid_of
from tf_style.serving import stylizer

# One served stylization, in a fresh interpreter that imports TensorFlow only (-I), as a server holds the model:
# the load, then the same request twice: the photo, the painting and every option at the export's values (a
# Python caller must give each input). The first call builds the loaded function's graph and oneDNN's
# primitives (the server's cost of a request to a model just loaded); the second is what later requests cost.
_SERVED_REQUEST_SCRIPT = """
import json
import sys
import time
import tensorflow as tf
start = time.perf_counter()
model = tf.saved_model.load(sys.argv[1])
load_seconds = time.perf_counter() - start
stylize = model.signatures["stylize"]
specs = stylize.structured_input_signature[1]
with open(sys.argv[2], "rb") as content_file, open(sys.argv[3], "rb") as style_file:
    request = {"content": tf.constant(content_file.read()), "style": tf.constant(style_file.read())}
request.update({name: tf.constant(value, specs[name].dtype) for name, value in json.loads(sys.argv[4]).items()})
request["face_boxes"] = tf.zeros([0, 4])  # the bundled photo has no face
seconds = []
for _ in range(2):
    start = time.perf_counter()
    stylize(**request)["image_png_bytes"].numpy()
    seconds.append(time.perf_counter() - start)
print(json.dumps({"load_seconds": load_seconds, "first_request_seconds": seconds[0],
                  "second_request_seconds": seconds[1]}))
"""


def served_config(preset: str, size: int, extra_flags: Sequence[str] = ()) -> StyleConfig:
    """The StyleConfig of `preset`'s flags, `--size=<size>` and `extra_flags`, as the CLI reads them."""
    from absl import flags

    flag_values = flags.FlagValues()
    define(flag_values, STYLE_OPTIONS, module_name=__name__)
    flag_values([__name__, *preset_flags(preset), f"--size={size}", *extra_flags])
    return config_from(flag_values)


def measure_served(sizes: Sequence[int] = (256, 512), preset: str = "flags/quality.cfg",
                   extra_flags: Sequence[str] = (),
                   progress=lambda message: print(message, file=sys.stderr, flush=True)) -> dict:
    """What one stylization costs served from the stylizer SavedModel, against the same run through the CLI.

    At each size: the preset exported with `--model=stylizer` (float32, TensorFlow's own kernels, as every
    export), reloaded in a child process that imports TensorFlow only, and sent the bundled photo and painting
    as JPEG bytes twice (the first request builds the graph: tracing included; the second: excluded); then
    `python -m tf_style.main` with the same flags and `--precision=float32` (the served model's precision),
    start-up and tracing included.

    Args:
        sizes: the results' long sides.
        preset: the flagfile of both runs.
        extra_flags: more style flags for both (tests use them to make the runs short).
        progress: receives one line per run as it starts.
    """
    results = {"preset": preset, "extra_flags": list(extra_flags), "cpu_count": os.cpu_count(),
               "load_average_at_start": os.getloadavg()[0], "sizes": []}
    for size in sizes:
        config = served_config(preset, size, extra_flags)
        total_steps = pyramid_of(config).total_steps
        entry = {"size": size, "steps_over_all_scales": total_steps}
        with tempfile.TemporaryDirectory() as export_dir:
            progress(f"served: exporting the stylizer for {size} px")
            start = time.perf_counter()
            model_dir = stylizer.export_stylizer(export_dir, config=config, max_size=max(sizes),
                                                        max_steps=max(total_steps, stylizer.DEFAULT_MAX_STEPS))
            entry["export_seconds"] = time.perf_counter() - start
            progress(f"served: two requests at {size} px in a fresh process")
            options = {name: value.numpy().decode() if value.dtype == tf.string else value.numpy().item()
                       for name, value in stylizer.request_defaults(config).items()}
            completed = subprocess.run(
                [sys.executable, "-I", "-c", _SERVED_REQUEST_SCRIPT, model_dir, api.SAMPLE_CONTENT, api.SAMPLE_STYLE,
                 json.dumps(options)], capture_output=True, text=True)
        if completed.returncode == 0:
            entry.update(json.loads(completed.stdout.strip().splitlines()[-1]))
        else:
            entry["served_error"] = last_error_line(completed)
        progress(f"served: the same run through the CLI at {size} px")
        entry["cli"] = time_preset(preset, size, [*extra_flags, "--precision=float32"])
        results["sizes"].append(entry)
    results["load_average_at_end"] = os.getloadavg()[0]
    return results


def format_served(results: dict) -> str:
    """The printed comparison: a served request (tracing included and excluded) against the CLI's wall time."""
    lines = [f"preset {results['preset']} {' '.join(results['extra_flags'])}, float32; {machine_load(results)}",
             f"{'size':>5} {'steps':>6} {'load s':>7} {'1st request s':>14} {'2nd request s':>14} {'CLI wall s':>11}"]
    for entry in results["sizes"]:
        if "served_error" in entry:
            lines.append(f"{entry['size']:>5} served request failed: {entry['served_error']}")
            continue
        lines.append(f"{entry['size']:>5} {entry['steps_over_all_scales']:>6} {entry['load_seconds']:>7.1f} "
                     f"{entry['first_request_seconds']:>14.1f} {entry['second_request_seconds']:>14.1f} "
                     f"{entry['cli']['wall_seconds']:>11.1f}")
        if "error" in entry["cli"]:
            lines.append(f"  CLI exit status {entry['cli']['returncode']}: {entry['cli']['error']}")
    lines.append("1st request: tracing included (the loaded function's graph is built); 2nd: excluded. CLI: "
                 "start-up, tracing and every scale's trace included.")
    return "\n".join(lines)
