"""The stylize program, checking files, exit codes and stderr: in process (`tests/programs.py`), and as a user
runs it, in a subprocess, for what only a new process shows (absl's --helpfull, a quiet start-up)."""

import dataclasses
import glob
import os

import numpy as np
import pytest
from absl import flags
from PIL import Image

import programs
from bad_inputs import ACCEPTED, REFUSED, existing_output, png_bytes
from programs import REPO, in_subprocess
from programs import stylize as run_cli
from tf_style.cli import flags as cli_flags
from tf_style.config import StyleConfig
from tf_style.serving import stylizer

PRESETS = sorted(glob.glob(os.path.join(REPO, "flags", "*.cfg")))


@pytest.mark.slow
def test_writes_an_image_of_the_asked_size_with_snapshots(tmp_path, content_path, style_path):
    output = tmp_path / "out" / "result.png"
    result = run_cli(f"--content={content_path}", f"--style={style_path}", f"--output={output}", "--size=64",
                     "--steps=6", "--save_every=3", "--contact_sheet")
    assert result.returncode == 0, result.stderr
    assert Image.open(output).size == (64, 48)
    assert (tmp_path / "out" / "result_step0003.png").exists()
    assert "wrote" in result.stdout and "final losses" in result.stdout
    assert sorted(os.listdir(tmp_path / "out")) == ["result.png", "result_sheet.png", "result_step0003.png"]
    # content (64x48) | style (64x64, shown at 48x48) | the step-3 snapshot | result, 8 px apart
    assert Image.open(tmp_path / "out" / "result_sheet.png").size == (64 + 8 + 48 + 8 + 64 + 8 + 64, 48)


@pytest.mark.slow
def test_without_output_the_result_goes_under_out(tmp_path, content_path, style_path):
    # out/ is in .gitignore, so that trying the program in a clone of the repository leaves the clone clean.
    result = run_cli(f"--content={content_path}", f"--style={style_path}", "--size=64", "--steps=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "out" / "content_style.png").size == (64, 48)
    assert cli_flags.default_output("photos/a.jpg", ["b.png", "c.jpg"]) == os.path.join("out", "a_b_c.png")
    assert {spec.name: spec.default for spec in cli_flags.STYLIZE}["output_dir"] == "out"


def test_jpeg_output_and_noise_start(tmp_path, content_path, style_path):
    output = tmp_path / "result.jpg"
    result = run_cli(f"--content={content_path}", f"--style={style_path}", f"--output={output}", "--size=64",
                     "--steps=2", "--init=noise", "--seed=1", "--pooling=avg", "--precision=float32")
    assert result.returncode == 0, result.stderr
    assert Image.open(output).format == "JPEG"


def _write(path, data):
    path.write_bytes(data)
    return str(path)


def _empty_directory(tmp) -> str:
    (tmp / "empty").mkdir(exist_ok=True)
    return str(tmp / "empty")


BAD_INPUTS = {
    "missing content": (lambda tmp, content, style: [f"--content={tmp / 'nope.jpg'}", f"--style={style}"],
                        "does not exist"),
    "style directory without images": (lambda tmp, content, style: [f"--content={content}",
                                                                     f"--style={_empty_directory(tmp)}"],
                                       "holds no image files"),
    "text file as image": (lambda tmp, content, style: [f"--content={_write(tmp / 'fake.jpg', b'text')}",
                                                         f"--style={style}"], "not a readable image"),
    "tiny image": (lambda tmp, content, style: [f"--content={content}", f"--style={style}",
                                                "--size=8"], "needs at least 16"),
    "unknown layer": (lambda tmp, content, style: [f"--content={content}", f"--style={style}",
                                                   "--style_layers=block1_conv1,block6_conv1"], "unknown layer"),
    "zero size": (lambda tmp, content, style: [f"--content={content}", f"--style={style}", "--size=0"],
                  "--size must be a positive integer"),
    "zero steps": (lambda tmp, content, style: [f"--content={content}", f"--style={style}", "--steps=0"],
                   "--steps must be a positive integer"),
    "negative weight": (lambda tmp, content, style: [f"--content={content}", f"--style={style}",
                                                     "--style_weight=-1"], "--style_weight must be"),
    "non-numeric flag": (lambda tmp, content, style: ["--size=big"], "--size"),
    "unknown flag": (lambda tmp, content, style: ["--colour=red"], "colour"),
    "bad enum": (lambda tmp, content, style: ["--pooling=min"], "--pooling"),
    "missing weights file": (lambda tmp, content, style: ["--weights=/no/such/vgg.h5"], "--weights"),
    "not a weights file": (lambda tmp, content, style: [f"--content={content}", f"--style={style}",
                                                        f"--weights={_write(tmp / 'w.h5', b'junk')}"],
                           "not an HDF5 weights file"),
    "unknown output extension": (lambda tmp, content, style: [f"--content={content}", f"--style={style}",
                                                              f"--output={tmp / 'result.xyz'}"],
                                 "unknown image extension"),
    "output is a directory": (lambda tmp, content, style: [f"--content={content}", f"--style={style}",
                                                           f"--output={tmp}"], "is a directory"),
    "stray argument": (lambda tmp, content, style: ["extra"], "unexpected arguments"),
    "tile size off the grid": (lambda tmp, content, style: [f"--content={content}", f"--style={style}",
                                                            "--tile_size=100"], "--tile_size must be 0"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_touches_no_output(case, tmp_path, content_path, style_path):
    make_args, message = BAD_INPUTS[case]
    args = make_args(tmp_path, content_path, style_path)
    if not any(arg.startswith("--output") for arg in args):
        output = tmp_path / "existing.png"
        Image.fromarray(np.full((20, 20, 3), 7, np.uint8)).save(output)
        before = output.read_bytes()
        args.append(f"--output={output}")
    else:
        output, before = None, None
    result = run_cli(*args, "--steps=2" if "--steps=0" not in args else "--size=64", cwd=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert message in error_lines[0]
    if output is not None:
        assert output.read_bytes() == before


@pytest.mark.parametrize("preset", [os.path.basename(path) for path in PRESETS])
def test_presets_parse_into_a_valid_config(preset):
    config = _config_from_command_line(f"--flagfile={os.path.join(REPO, 'flags', preset)}")
    assert config.steps > 0 and config.size >= 64


def _config_from_command_line(*arguments):
    """The StyleConfig the stylize program builds from these arguments."""
    flag_values = flags.FlagValues()
    cli_flags.define(flag_values, cli_flags.STYLIZE)
    flag_values(["tf_style", *arguments])
    return cli_flags.config_from(flag_values)


def test_the_quality_preset_is_the_defaults():
    # The preset says so; the examples' commands in docs/examples.md rely on it.
    quality = _config_from_command_line(f"--flagfile={os.path.join(REPO, 'flags', 'quality.cfg')}")
    defaults = StyleConfig()
    assert quality == defaults.replace(style_layer_weights=(1.0,) * len(defaults.style_layers))
    assert quality.balanced_style_layer_weights == defaults.balanced_style_layer_weights


def test_one_stylizer_export_serves_every_preset():
    # The bundled presets differ only in what a request to the stylizer export sets (docs/serving.md, "Presets").
    request_options = set(stylizer.request_defaults(StyleConfig()))
    fixed_options = [name for name in StyleConfig.network_options() + stylizer.STYLIZER_OPTIONS
                     if name not in request_options]

    def fixed_at_export(config: StyleConfig) -> dict:
        fixed = {name: getattr(config, name) for name in fixed_options}
        fixed["style_layer_weights"] = config.balanced_style_layer_weights
        return fixed

    quality = _config_from_command_line(f"--flagfile={os.path.join(REPO, 'flags', 'quality.cfg')}")
    for path in PRESETS:
        assert fixed_at_export(_config_from_command_line(f"--flagfile={path}")) == fixed_at_export(quality), path


def test_scale_detail_reaches_the_config():
    assert _config_from_command_line("--scale_detail=0.5").scale_detail == 0.5
    assert _config_from_command_line().scale_detail == 1.0


def test_there_are_presets():
    assert {"preview.cfg", "quality.cfg"} <= {os.path.basename(path) for path in PRESETS}


def test_every_option_has_a_flag_but_the_api_only_ones():
    names = {spec.name for spec in cli_flags.STYLE_OPTIONS}
    assert names == {field.name for field in dataclasses.fields(StyleConfig)} - {"progress_every"}
    assert _config_from_command_line("--style_blend_weights=1,3", "--checkpoint_dir=").style_blend_weights == (1, 3)
    assert _config_from_command_line("--checkpoint_dir=").checkpoint_dir is None
    assert _config_from_command_line("--nowarm_start_optimizer", "--seed=3", "--style_layers=block1_conv1") == \
        StyleConfig(warm_start_optimizer=False, seed=3, style_layers=("block1_conv1",))


def test_number_lists_must_be_numbers():
    result = run_cli("--style_layer_weights=1,x,1,1,1")
    assert result.returncode == 2
    assert result.stderr == ("tf_style: error: --style_layer_weights must be numbers separated by commas, "
                             "got 1,x,1,1,1\n")


@pytest.mark.slow
def test_helpfull_documents_the_flags_and_the_start_up_is_quiet(tmp_path):
    result = in_subprocess("tf_style.main", "--helpfull")
    for flag in ("--content", "--style", "--output", "--size", "--steps", "--learning_rate", "--content_weight",
                 "--style_weight", "--tv_weight", "--content_layers", "--style_layers", "--weights", "--pooling",
                 "--init", "--seed", "--save_every", "--xla", "--precision", "--scale_detail"):
        assert flag in result.stdout
    # The user's first error, in a new process: TensorFlow's C++ start-up notices are hidden, the error is one line.
    missing = in_subprocess("tf_style.main", f"--content={tmp_path / 'nope.jpg'}", f"--output={tmp_path / 'o.png'}")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "does not exist" in missing.stderr
    assert not (tmp_path / "o.png").exists()


def test_help_lists_the_programs_own_flags(monkeypatch):
    # absl's --help shows the flags of the main module, which it names by sys.argv[0].
    monkeypatch.setattr("sys.argv", ["/somewhere/tf_style/export.py"])
    flag_values = flags.FlagValues()
    cli_flags.define(flag_values, cli_flags.EXPORT)
    assert "--export_dir" in flag_values.main_module_help() and "--padding" in flag_values.main_module_help()


def test_the_pipeline_takes_no_flag_that_it_refuses():
    assert {"content", "style", "checkpoint_dir", "precision"} <= {spec.name for spec in cli_flags.STYLIZE}
    pipeline = {spec.name for spec in cli_flags.PIPELINE}
    assert "content_pattern" in pipeline and not pipeline & set(cli_flags.REFUSED_BY_PIPELINE)


# ---------------------------------------------------------------------------------------------------------
# The command line: the runs that fail or finish at once start together; see "Bad inputs" in docs/robustness.md.

def _cli_cases(directory):
    """{case: (args, expected exit status, expected message part)} for runs that need no signal."""
    style = os.path.join(directory, "style.png")
    with open(style, "wb") as file:
        file.write(png_bytes(64, 64))
    output = existing_output(directory)
    common = [f"--style={style}", "--size=64", "--steps=2", f"--output={output}"]
    cases = {name: ([f"--content={make(directory)}", *common], 2, message)
             for name, (make, message) in REFUSED.items()}
    accepted = {name: make(directory) for name, (make, _) in ACCEPTED.items()}
    cases["odd but valid images"] = (
        [f"--content={accepted.pop('EXIF-rotated photo')}", f"--style={','.join(accepted.values())}", "--size=64",
         "--steps=1", f"--output={os.path.join(directory, 'odd', 'result.png')}"], 0, "wrote")
    content = os.path.join(directory, "content.png")
    with open(content, "wb") as file:
        file.write(png_bytes(48, 64))
    cases["size beyond memory"] = ([f"--content={content}", *common, "--size=60000"], 2,
                                   "GB of memory in")
    with open(os.path.join(directory, "a_file"), "w") as file:
        file.write("x")
    cases["checkpoint dir not writable"] = (
        [f"--content={content}", *common, f"--checkpoint_dir={os.path.join(directory, 'a_file', 'ck')}"], 2,
        "cannot write checkpoints in")
    # float32 gradients overflow to infinity: the image becomes NaN at the first step.
    cases["non-finite image"] = ([f"--content={content}", *common, "--style_weight=1e38"], 1,
                                 "diverged at step 2 (loss")
    return cases, output


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("cli"))
    cases, output = _cli_cases(directory)
    before = open(output, "rb").read()
    results = {}
    for case, (arguments, _, _) in cases.items():
        ran = programs.stylize(*arguments)
        results[case] = (ran.returncode, ran.stdout, ran.stderr)
    return cases, results, before, output, directory


@pytest.mark.slow
@pytest.mark.parametrize("case", [*REFUSED, "size beyond memory", "checkpoint dir not writable", "non-finite image"])
def test_cli_refuses_in_one_line_and_leaves_the_output_alone(cli_results, case):
    cases, results, before, output, _ = cli_results
    status, stdout, stderr = results[case]
    _, expected_status, message = cases[case]
    assert status == expected_status, (stdout, stderr)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], stderr
    assert open(output, "rb").read() == before


def test_cli_stylizes_odd_but_valid_images(cli_results):
    _, results, _, _, directory = cli_results
    status, stdout, stderr = results["odd but valid images"]
    assert status == 0, stderr
    assert Image.open(os.path.join(directory, "odd", "result.png")).size == (32, 64)  # the EXIF turn applied


def test_ctrl_c_while_tensorflow_loads_is_one_line(capfd):
    from tf_style.cli.startup import native_stderr_silenced

    with pytest.raises(SystemExit) as exit_info:
        with native_stderr_silenced():
            raise KeyboardInterrupt
    assert exit_info.value.code == 130
    assert capfd.readouterr().err == "tf_style: interrupted while starting; nothing was written\n"
