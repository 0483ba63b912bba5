"""The benchmark, at a tiny size: it runs end to end and records every number; speed is never asserted."""

import json
import os

import numpy as np
import pytest

import programs
from benchmarks import (bench, cli_runs, peaks, phases, preview, pytorch_peer, report, served, steps, throughput,
                        time_by_size, timing)
from tf_style.config import StyleConfig
from tf_style.errors import UsageError
from tf_style.network.device import cpu_has_fast_bfloat16
from tf_style.network.features import extractor_for


def test_conv_flops_count_forward_convolutions_at_their_output_size():
    extractor = extractor_for(StyleConfig(content_layers=("block2_conv1",), style_layers=("block2_conv1",)),
                              "float32")
    # block1_conv1 and block1_conv2 at 8x8, block2_conv1 at 4x4 after the pool.
    expected = 2 * 64 * 9 * (3 * 64 + 64 * 64) + 2 * 16 * 9 * 64 * 128
    assert steps.conv_flops(extractor.model, 8, 8) == expected
    assert steps.step_flops(extractor.model, 8, 8) == 2 * expected


def test_time_steps_times_fewer_steps_over_budget():
    calls = []
    timed = timing.time_steps(lambda: calls.append(1), num_steps=4, warmup_steps=2)
    assert len(calls) == 6 and timed["timed_steps"] == 4 and len(timed["step_seconds"]) == 4
    slow = timing.time_steps(lambda: sum(range(200_000)), num_steps=10, warmup_steps=1, budget_seconds=1e-9)
    assert slow["timed_steps"] == 2


def test_peak_dtype_of_policies():
    assert peaks.peak_dtype("mixed_bfloat16") == "bfloat16"
    assert peaks.peak_dtype("float32") == "float32"


@pytest.mark.slow
def test_tiny_benchmark_writes_every_number(tmp_path):
    results = bench.run_benchmark([64], num_steps=1, warmup_steps=1, preset=None, batch_size=2, peer_size=64,
                                  peer_rounds=1, progress=lambda message: None)
    path = tmp_path / "out" / "bench.json"
    report.write_json(str(path), results)
    written = json.loads(path.read_text())
    assert os.listdir(path.parent) == ["bench.json"]

    assert set(written) >= {"machine", "plan", "settings", "peaks", "flop_counting", "measurements", "skipped",
                            "memory", "preset"}
    assert written["plan"]["reason"]
    assert written["preset"] is None
    # bfloat16's peak is measured only where the CPU has bfloat16 units (AVX-512 BF16 or AMX) or the plan runs in
    # it: elsewhere it is emulated, and no step runs in it.
    assert set(written["peaks"]) == {"float32", peaks.peak_dtype(written["plan"]["dtype_policy"]),
                                     *(["bfloat16"] if cpu_has_fast_bfloat16() else [])}
    for dtype in written["peaks"]:
        assert set(written["peaks"][dtype]) - {"pytorch_conv_gflops"} == {"matmul_gflops", "conv_gflops",
                                                                            "peak_gflops"}
        assert all(value > 0 for value in written["peaks"][dtype].values())
    names = [measurement["name"] for measurement in written["measurements"]]
    assert any(name.startswith("tf_style plan") for name in names)
    assert any(name.startswith("tutorial") for name in names) and any(name.startswith("naive") for name in names)
    assert bench.REGIONS_NAME in names
    if pytorch_peer.available():
        assert set(written["pytorch"]["ratios"]) == {"tf_style float32 (its plan) / PyTorch float32",
                                                     f"tf_style plan / PyTorch {_peer_precision()}"}
        assert all(peak["pytorch_conv_gflops"] > 0 for peak in written["peaks"].values())
        assert "against PyTorch at 64x48, interleaved" in report.format_report(results)
    else:
        assert written["pytorch"] is None
        assert any(reason.startswith("the comparison with PyTorch: torch is not installed")
                   for reason in written["skipped"])
    [batched] = [measurement for measurement in written["measurements"] if measurement["batch_size"] == 2]
    assert batched["name"].startswith("tf_style plan, batch of 2")
    assert batched["seconds_per_image_step"] == pytest.approx(batched["seconds_per_step"] / 2)
    for measurement in written["measurements"]:
        assert measurement["size"] == 64 and measurement["timed_steps"] == 1
        for key in ("seconds_per_step", "gflop_per_step", "achieved_gflops", "fraction_of_peak", "cores_used"):
            assert measurement[key] > 0, (measurement["name"], key)
    [memory] = written["memory"]["sizes"]
    assert memory["size"] == 64 and memory["pixels"] == 64 * 48
    assert memory["peak_rss_mb"] >= memory["start_rss_mb"] > 0

    table = report.format_report(written)
    assert written["plan"]["reason"] in table and "of peak" in table and "peak memory" in table


@pytest.mark.slow
def test_preset_is_timed_through_the_cli(tmp_path):
    preset = tmp_path / "tiny.cfg"
    preset.write_text("# a two-step preset\n--steps=2\n")
    timing = cli_runs.time_preset(str(preset), 64)
    assert timing["returncode"] == 0, timing.get("error")
    assert timing["wall_seconds"] > 0 and timing["flags"] == ["--steps=2"]
    assert timing["command"].startswith("python -m tf_style.main --flagfile=")


@pytest.mark.slow
def test_time_by_size_plots_the_preset_beside_the_tutorials_1000_steps(tmp_path):
    preset = tmp_path / "tiny.cfg"
    preset.write_text("--steps=2\n--initial_size=0\n")
    plot = tmp_path / "by_size.png"
    assert time_by_size.main([str(plot), "--sizes", "64", "--preset", str(preset), "--steps", "1",
                              "--warmup_steps", "1"]) == 0
    numbers = json.loads((tmp_path / "by_size.json").read_text())
    (row,) = numbers["rows"]
    assert row["size"] == 64 and row["preset_seconds"] > 0
    assert row["tutorial_1000_steps_seconds"] == pytest.approx(500 * sum(row["tutorial_seconds_per_step_around"]))
    assert row["ratio"] == pytest.approx(row["preset_seconds"] / row["tutorial_1000_steps_seconds"])
    assert plot.stat().st_size > 0


@pytest.mark.slow
def test_preview_benchmark_compares_the_preview_with_each_print_at_the_previews_size(tmp_path):
    from tf_style.api import SAMPLE_CONTENT, SAMPLE_STYLE

    sheet = tmp_path / "preview.png"
    assert preview.main([str(sheet), f"{SAMPLE_CONTENT}:{SAMPLE_STYLE}", "--preview_size", "64",
                         "--print_sizes", "96", "--extra_flags=--steps=2,--initial_size=0"]) == 0
    (pair,) = json.loads((tmp_path / "preview.json").read_text())["pairs"]
    runs = pair["runs"]
    assert set(runs) == {"preview flags/preview.cfg", "96 px"} and runs["preview flags/preview.cfg"]["size"] == 64
    for run in runs.values():
        assert run["seconds"] > 0 and run["paint"] > 0 and run["palette"] > 0
    preview_run = runs["preview flags/preview.cfg"]
    against = preview_run["against"]["96 px"]
    assert against["time_ratio"] == pytest.approx(preview_run["seconds"] / runs["96 px"]["seconds"])
    assert isinstance(against["agrees"], bool)
    assert sheet.stat().st_size > 0


@pytest.mark.slow
def test_phases_splits_a_run_into_scales_and_their_set_up(capsys):
    assert phases.parse_options(["--size=64", "--learning_rate=2.5", "--optimizer=adam"]) == {
        "size": 64, "learning_rate": 2.5, "optimizer": "adam"}
    assert phases.scale_phases([(1.0, 0), (1.5, 0), (3.0, 1), (3.2, 1)], 0.0) == [
        (0, [1.0, 0.5]), (1, [1.5, pytest.approx(0.2)])]
    assert phases.main(["--size=96", "--initial_size=64", "--initial_steps=3", "--steps=2"]) == 0
    printed = capsys.readouterr().out
    assert "scale 0: 3 steps" in printed and "scale 1: 2 steps" in printed and "beyond the evaluations" in printed


def test_sizes_are_validated():
    assert steps.parse_sizes(["256", "512"]) == [256, 512]
    with pytest.raises(UsageError, match="--sizes must be integers"):
        steps.parse_sizes(["abc"])
    with pytest.raises(UsageError, match="--sizes must each be at least 22"):
        steps.parse_sizes(["8"])


def test_a_bad_flag_is_a_one_line_usage_error():
    result = programs.in_process("benchmarks.bench", "--preset=no/such.cfg")
    assert result.returncode == 2
    assert result.stderr.startswith("benchmarks.bench: error: --preset: no file") and result.stderr.count("\n") == 1


def test_throughput_inputs_are_different_photos_of_one_size(tmp_path):
    from PIL import Image

    photos, style = throughput.throughput_inputs(str(tmp_path), num_images=3, size=64)
    loaded = [np.asarray(Image.open(os.path.join(photos, name))) for name in sorted(os.listdir(photos))]
    assert len(loaded) == 3 and all(photo.shape == (48, 64, 3) for photo in loaded)
    assert not np.array_equal(loaded[0], loaded[1]) and not np.array_equal(loaded[1], loaded[2])
    assert max(Image.open(style).size) == 64


def test_throughput_report_gives_images_per_minute_of_each_command():
    entry = {"command": "python -m ...", "wall_seconds": 120.0, "images_per_minute": 12.0, "returncode": 0,
             "results_written": 24}
    results = {"num_images": 24, "size": 256, "style_flags": ["--steps=10"], "batch_size": 4, "num_workers": 2,
               "cpu_count": 2, "load_average_at_start": 1.0, "load_average_at_end": 2.0, "cli": entry,
               "cli_one_a_step": dict(entry, wall_seconds=144.0, images_per_minute=10.0),
               "beam": dict(entry, wall_seconds=90.0, images_per_minute=16.0)}
    table = throughput.format_throughput(results)
    assert "batched CLI (4 images a step)" in table and "the same CLI, one image a step" in table
    assert "Beam DirectRunner, 2 worker processes" in table
    assert "12.00" in table and "10.00" in table and "16.00" in table


def test_a_float32_plan_skips_the_float32_row_but_keeps_the_batched_one(monkeypatch):
    float32_plan = bench.plan_compute("float32", "false")
    monkeypatch.setattr(bench, "plan_compute", lambda *args: float32_plan)
    monkeypatch.setattr(bench, "measure_peaks", lambda *args: {"float32": {"peak_gflops": 1.0}})
    measured = []
    monkeypatch.setattr(bench, "measure_step", lambda name, *args: measured.append(name) or {"name": name})
    results = bench.run_benchmark([64, 1024], preset=None, measure_memory_too=False, batch_size=3, peer_size=None,
                                  progress=lambda message: None)
    assert measured == ["tf_style plan (float32, XLA off)", "tf_style plan, batch of 3 images", bench.REGIONS_NAME,
                        "tutorial recipe (VGG19, float32)", "naive eager (float32, targets every step)",
                        "tf_style plan (float32, XLA off)", bench.REGIONS_NAME, "tutorial recipe (VGG19, float32)"]
    assert "tf_style float32: the plan is already float32 without XLA" in results["skipped"]


def _peer_precision() -> str:
    return "bfloat16 autocast" if bench.plan_compute().dtype_policy == "mixed_bfloat16" else "float32 channels_last"


def test_the_pytorch_step_runs_and_keeps_its_image_in_range():
    pytest.importorskip("torch")
    step = pytorch_peer.PyTorchStep(64)
    assert all(np.isfinite(step()) for _ in range(3))
    assert step.image.shape == (1, 3, 48, 64) and 0 <= float(step.image.min()) <= float(step.image.max()) <= 1


@pytest.mark.slow
def test_tiny_tiling_benchmark_measures_untiled_and_tiled_in_child_processes(tmp_path):
    from benchmarks import tiling
    results = tiling.run_tiling_benchmark([128], 64, "float32", num_steps=1, warmup_steps=0,
                                          progress=lambda message: None)
    entry, = results["sizes"]
    assert entry["untiled"]["plan"] == entry["tiled"]["plan"] == "float32"
    assert entry["untiled"]["grid"] is None and entry["tiled"]["grid"] == "2 × 2 tiles of 64 px + 80 px margin"
    for name in ("untiled", "tiled"):
        assert entry[name]["seconds_per_step"] > 0 and entry[name]["peak_rss_mb"] >= entry[name]["start_rss_mb"] > 0
    assert entry["tiled_over_untiled_seconds"] > 0
    assert "2 × 2 tiles of 64 px" in tiling.format_report(results)
    # Above what fits, tiled only.
    assert tiling.untiled_fits(1024, 24 << 30) and not tiling.untiled_fits(8192, 24 << 30)


@pytest.mark.slow
def test_served_row_at_a_tiny_size_records_every_number():
    results = served.measure_served([64], extra_flags=["--initial_size=0", "--steps=2"], progress=lambda message: None)
    [entry] = results["sizes"]
    assert entry["size"] == 64 and entry["steps_over_all_scales"] == 2
    assert "served_error" not in entry and entry["cli"]["returncode"] == 0, entry
    for key in ("export_seconds", "load_seconds", "first_request_seconds", "second_request_seconds"):
        assert entry[key] > 0, key
    assert "1st request" in served.format_served(results)
