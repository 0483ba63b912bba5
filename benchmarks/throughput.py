"""Images per minute of the Beam pipeline (DirectRunner, worker processes) against the batched CLI, on the same
photos (`measure_throughput`, `python -m benchmarks.bench --throughput`), and its printed comparison
(`format_throughput`).
"""

import os
import subprocess
import sys
import tempfile
import time
from typing import Sequence

from benchmarks.cli_runs import last_error_line
from benchmarks.report import machine_load
from tf_style import api, images

_THROUGHPUT_COMMANDS = ("cli", "cli_one_a_step", "beam")


def throughput_inputs(directory: str, num_images: int, size: int) -> tuple:
    """`num_images` different 4:3 photos of long side `size` (crops of the bundled photo) and the painting.

    Returns:
        (the directory of photos, the painting's path); all the photos have one size, so they batch together.
    """
    photo = images.load_image(api.SAMPLE_CONTENT)
    height, width = round(size * 3 / 4), size
    crop_height, crop_width = round(photo.shape[1] * 0.8 * 3 / 4), round(photo.shape[1] * 0.8)
    photos = os.path.join(directory, "photos")
    os.makedirs(photos, exist_ok=True)
    for index in range(num_images):
        # Crops along a diagonal, so that each image is a different picture (none is a cached duplicate).
        top = round((photo.shape[0] - crop_height) * index / max(1, num_images - 1))
        left = round((photo.shape[1] - crop_width) * index / max(1, num_images - 1))
        crop = photo[top:top + crop_height, left:left + crop_width]
        images.save_image(os.path.join(photos, f"photo{index:03d}.png"), images.resize(crop, height, width))
    style = os.path.join(directory, "painting.png")
    images.save_image(style, images.resize_long_side(images.load_image(api.SAMPLE_STYLE), size))
    return photos, style


def time_command(arguments: Sequence[str], num_images: int, shown: str) -> dict:
    """Runs `python <arguments>`; its wall time (start-up included) and images per minute."""
    start = time.perf_counter()
    completed = subprocess.run([sys.executable, *arguments], capture_output=True, text=True)
    wall_seconds = time.perf_counter() - start
    result = {"command": shown, "wall_seconds": wall_seconds, "images_per_minute": 60 * num_images / wall_seconds,
              "returncode": completed.returncode}
    if completed.returncode != 0:
        result["error"] = last_error_line(completed)
    return result


def measure_throughput(num_images: int = 24, size: int = 256, style_flags: Sequence[str] = (),
                       num_workers: int = 2, batch_size: int = 4,
                       progress=lambda message: print(message, file=sys.stderr, flush=True)) -> dict:
    """Images per minute of the batched CLI and of the Beam pipeline (DirectRunner) on the same photos.

    The commands run in child processes, start-up included: `python -m tf_style.main --content=DIR` (one
    process, `batch_size` images a train step, and again with one image a step, to show what batching gives)
    and `python -m tf_style.beam_main` with `num_workers` worker processes (multi_processing), each building
    its own network and taking `batch_size` images a batch.

    Args:
        num_images: photos stylized by each command.
        size: their long side, in pixels (4:3).
        style_flags: flags for both commands (`--flagfile=flags/preview.cfg`, `--steps=2`, ...); `--size`,
            `--batch_size` and the inputs and outputs are set here.
        num_workers: the DirectRunner's worker processes.
        batch_size: images per train step, for both.
        progress: receives one line per command as it starts.
    """
    common = [*style_flags, f"--size={size}", f"--batch_size={batch_size}"]
    results = {"num_images": num_images, "size": size, "style_flags": list(style_flags), "batch_size": batch_size,
               "num_workers": num_workers, "cpu_count": os.cpu_count(), "load_average_at_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as directory:
        photos, style = throughput_inputs(directory, num_images, size)
        for name, batch_flags in (("cli", common), ("cli_one_a_step", [*common, "--batch_size=1"])):
            progress(f"batched CLI ({batch_flags[-1]}): {num_images} images at {size} px")
            results[name] = time_command(
                ["-m", "tf_style.main", f"--content={photos}", f"--style={style}",
                 f"--output_dir={os.path.join(directory, name)}", *batch_flags], num_images,
                " ".join(["python -m tf_style.main --content=<photos> --style=<painting> --output_dir=<tmp>",
                          *batch_flags]))
        progress(f"Beam DirectRunner, {num_workers} workers: {num_images} images at {size} px")
        beam_options = ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                        f"--direct_num_workers={num_workers}"]
        results["beam"] = time_command(
            ["-m", "tf_style.beam_main", f"--content_pattern={os.path.join(photos, '*')}", f"--style={style}",
             f"--output_dir={os.path.join(directory, 'beam')}", *common, *beam_options], num_images,
            " ".join(["python -m tf_style.beam_main --content_pattern='<photos>/*' --style=<painting> "
                      "--output_dir=<tmp>", *common, *beam_options]))
        for name in _THROUGHPUT_COMMANDS:
            written = [entry for entry in os.listdir(os.path.join(directory, name)) if entry.endswith(".png")] \
                if os.path.isdir(os.path.join(directory, name)) else []
            results[name]["results_written"] = len(written)
    results["load_average_at_end"] = os.getloadavg()[0]
    return results


def format_throughput(results: dict) -> str:
    """The printed comparison: wall time and images per minute of each command."""
    lines = [f"{results['num_images']} images at {results['size']} px, {results['batch_size']} a train step, "
             f"flags {' '.join(results['style_flags']) or '(defaults)'}; {machine_load(results)}",
             f"{'command':<44} {'wall s':>8} {'images/min':>10} {'written':>8}"]
    for name, label in (("cli", f"batched CLI ({results['batch_size']} images a step)"),
                        ("cli_one_a_step", "the same CLI, one image a step"),
                        ("beam", f"Beam DirectRunner, {results['num_workers']} worker processes")):
        entry = results[name]
        lines.append(f"{label:<44} {entry['wall_seconds']:>8.1f} {entry['images_per_minute']:>10.2f} "
                     f"{entry['results_written']:>8}")
        if "error" in entry:
            lines.append(f"  exit status {entry['returncode']}: {entry['error']}")
    for name in _THROUGHPUT_COMMANDS:
        lines.append(f"{name}: {results[name]['command']}")
    return "\n".join(lines)
