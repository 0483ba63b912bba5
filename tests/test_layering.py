"""The package's layering, read from its imports (ast): who may import TensorFlow, absl and Apache Beam.

- `config`, `errors`, `vgg` and `color` import no TensorFlow or Keras, not even through another module of
  the package: options, errors and the network's facts can be read without loading TensorFlow.
- absl is imported only by the command-line layer, `tf_style/cli/` (the programs and what they share).
- apache_beam is imported only by the pipeline, `tf_style/beam/`.
- OpenCV (cv2) is imported only by `tf_style/video/` and `tf_style/objective/faces.py` (the face detector), and
  imageio_ffmpeg, the `video` extra, only by `tf_style/video/`.
- No library module imports the command-line layer or the pipeline; the programs' thin modules
  (`tf_style.main`, ...) import only the command-line layer.
- The folders stand on one another (`FOLDERS_BELOW`): the network on nothing of the library, tiling on the
  network, the objective on both, the optimization on all three, serving on the optimization; none of them
  imports the facade (`api`), the planner, callbacks, images or video; video stands on the `Stylizer`, below
  the API.
"""

import ast
import os

import pytest

PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tf_style")

COMMAND_LINE = {"tf_style.cli", "tf_style.cli.flags", "tf_style.cli.support", "tf_style.cli.startup",
                "tf_style.cli.main", "tf_style.cli.export", "tf_style.cli.beam"}
# `python -m tf_style.main` and the console scripts: thin modules that hand over to the command-line layer.
PROGRAMS = {"tf_style.main", "tf_style.export", "tf_style.beam_main"}
PIPELINE = {"tf_style.beam", "tf_style.beam.pipeline"}
WITHOUT_TENSORFLOW = {"tf_style.config", "tf_style.errors", "tf_style.network.vgg", "tf_style.color"}
VIDEO = "tf_style.video"
VIDEO_EXTRA = ("cv2", "imageio_ffmpeg")
FACES = "tf_style.objective.faces"
# {folder: the folders and top-level modules of the package its modules may import}.
FOLDERS_BELOW = {
    "network": {"errors", "files"},
    "tiling": {"config", "errors", "network"},
    "objective": {"config", "errors", "network", "tiling"},
    "optimization": {"config", "errors", "files", "network", "objective", "sizes", "tiling"},
    "serving": {"config", "errors", "files", "network", "objective", "optimization", "sizes"},
    # Below the API, which stylizes a batch's videos with the images (`api.stylize_files`).
    "video": {"config", "errors", "files", "images", "objective", "optimization", "pairs", "sizes", "stylizer"},
}


def _modules() -> dict:
    """{module name: the set of absolute module names it imports}, for every module of the package."""
    modules = {}
    for directory, _, files in os.walk(PACKAGE_DIR):
        for file_name in files:
            if not file_name.endswith(".py"):
                continue
            path = os.path.join(directory, file_name)
            relative = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))[:-3].replace(os.sep, ".")
            name = relative[:-len(".__init__")] if relative.endswith(".__init__") else relative
            with open(path, encoding="utf-8") as source:
                tree = ast.parse(source.read(), path)
            imported = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    imported.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported.add(node.module)
                    # `from tf_style import api` imports the module tf_style.api.
                    imported.update(f"{node.module}.{alias.name}" for alias in node.names)
            modules[name] = imported
    return modules


MODULES = _modules()


def _is(imported: str, package: str) -> bool:
    return imported == package or imported.startswith(package + ".")


def _room(module: str) -> str:
    """The folder (or top-level module) of the package a module name belongs to: 'tf_style.network.vgg' ->
    'network'; None for the package itself and for other packages."""
    parts = module.split(".")
    return parts[1] if parts[0] == "tf_style" and len(parts) > 1 else None


def _reaches(module: str, seen=None) -> set:
    """Every module `module` imports, directly or through modules of the package."""
    seen = set() if seen is None else seen
    for imported in MODULES.get(module, ()):
        if imported not in seen:
            seen.add(imported)
            if imported in MODULES:
                _reaches(imported, seen)
    return seen


def test_the_picture_covers_real_modules():
    assert WITHOUT_TENSORFLOW | COMMAND_LINE | PROGRAMS | PIPELINE <= set(MODULES)
    assert {name for name in MODULES if _is(name, "tf_style.cli")} == COMMAND_LINE
    assert "cv2" in MODULES["tf_style.video.dependencies"] and "cv2" in MODULES[FACES]
    assert "tensorflow" in MODULES["tf_style.network.features"]  # the reader sees imports at all


@pytest.mark.parametrize("module", sorted(WITHOUT_TENSORFLOW))
def test_options_errors_and_facts_load_without_tensorflow(module):
    heavy = {name for name in _reaches(module) if _is(name, "tensorflow") or _is(name, "keras")}
    assert not heavy, f"{module} imports {sorted(heavy)}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_absl_and_beam_stay_at_the_edges(module):
    imported = MODULES[module]
    if module not in COMMAND_LINE:
        assert not any(_is(name, "absl") for name in imported), f"{module} imports absl"
    if module not in PIPELINE:
        assert not any(_is(name, "apache_beam") for name in imported), f"{module} imports apache_beam"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_opencv_and_ffmpeg_stay_in_the_video_package_and_the_face_detector(module):
    allowed = set(VIDEO_EXTRA) if _is(module, VIDEO) else {"cv2"} if module == FACES else set()
    extra = {name for name in MODULES[module]
             if any(_is(name, package) for package in VIDEO_EXTRA) and name not in allowed}
    assert not extra, f"{module} imports {sorted(extra)}"


@pytest.mark.parametrize("module", sorted(set(MODULES) - COMMAND_LINE - PROGRAMS - PIPELINE))
def test_library_modules_do_not_import_the_programs_or_the_pipeline(module):
    edges = {name for name in MODULES[module] if name in COMMAND_LINE | PROGRAMS | PIPELINE}
    assert not edges, f"{module} imports {sorted(edges)}"


@pytest.mark.parametrize("module", sorted(PROGRAMS))
def test_the_programs_modules_hand_over_to_the_command_line_layer(module):
    package = {name for name in MODULES[module] if name in MODULES}
    assert package and package <= COMMAND_LINE, f"{module} imports {sorted(package - COMMAND_LINE)}"


@pytest.mark.parametrize("module", sorted(name for name in MODULES if _room(name) in FOLDERS_BELOW))
def test_the_folders_import_only_the_folders_below_them(module):
    room = _room(module)
    above = {_room(name) for name in MODULES[module]} - FOLDERS_BELOW[room] - {room, None}
    assert not above, f"{module} imports from {sorted(above)}"
