"""The stylizer SavedModel: the served result against `tf_style.stylize` in a process that imports only
TensorFlow, the signatures as saved_model_cli shows and runs them, the in-graph schedule, and the limits under a
memory cap.

One model, exported through the command line at 64 px (two scales of 10 steps), and one served process that
sends it every request the tests look at: each made once per test run, whichever xdist worker asks first
(`made_once`), as they take most of this module's time (TensorFlow's start-up, the export, the graph's).
"""

import base64
import dataclasses
import fcntl
import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow.core.protobuf import saved_model_pb2

import programs
from bad_inputs import png_header_claiming
from conftest import gradient_image, stripes_image
from tf_style import api, images
from tf_style.config import StyleConfig
from tf_style.errors import UsageError
from tf_style.network.convolution import KernelPlan
from tf_style.objective import faces
from tf_style.serving import stylizer
from tf_style.sizes import ints, scaled_size, style_seen_size

# Adam: the bounds below are Adam's. L-BFGS's unit steps amplify the rounding further over many steps (measured at
# these options: 6.6 grey levels apart at most, 0.64 on average, losses 1.7e-3 apart; from NOISE_REQUEST's noise
# 19 at most): the same picture with some strokes moved. Its served loop is held to the library's over fewer
# steps, where the rounding has not grown (test_either_optimizer_served_paints_what_stylize_paints).
OPTIONS = {"size": 64, "initial_size": 48, "initial_steps": 10, "steps": 10, "optimizer": "adam"}
EXPORT_SEED = 3
MAX_PIXELS, MAX_SIZE, MAX_STEPS = 200_000, 128, 60
ASTRONAUT = os.path.join(api.SAMPLES_DIR, "photos", "astronaut.jpg")
# A signature called from Python takes every input (TF Serving fills those a request leaves out from the
# SignatureDef's defaults; tf.saved_model.load's signatures do not).
NO_FACES = np.zeros((0, 4), np.float32)
# The largest difference from the library's result, in grey levels of 0..255, and the mean one. Measured on the
# bundled pair at these options: 0.28 and 0.0038, the final losses 4e-5 apart (relative); at 96 px (scales of
# 72 and 96): 1.02 and 0.031, 2.2e-4; from NOISE_REQUEST's noise: 0.015 and 0.0006, 1e-7. The first step's
# losses are equal to the last bit and its image differs by at most 0.001: both run `core.step` on the same
# objective, but Grappler compiles a while_loop in a SavedModel and a traced step apart, and the two graphs sum
# the gradient's parts in another order. Adam then divides each pixel's gradient by its own running size, so
# where a gradient is near zero (the photo's flat sky) a rounding difference changes the step's sign and moves
# the pixel by up to the learning rate: the difference grows with the steps and the pixels (at 96 px, one
# scale: 4.3 after 10 steps, 17 after 20), while the losses stay close.
MAX_DIFFERENCE, MEAN_DIFFERENCE, LOSS_RTOL = 3.0, 0.1, 1e-3
NOISE_REQUEST = {"size": 48, "steps": 10, "init": "noise", "seed": 5}

# The served process: a fresh interpreter that imports TensorFlow and nothing of tf_style (-I drops PYTHONPATH
# and the working directory from sys.path), with its address space capped so that a request that allocated
# what it should have refused would fail it. It sends every request in turn and keeps the outputs, or the
# message of an InvalidArgument.
SERVED_SCRIPT = """
import pickle
import resource
import sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
with open(sys.argv[2], "rb") as requests_file:
    requests = pickle.load(requests_file)
answers = {}
for name, (signature_name, inputs) in requests.items():
    signature = model.signatures[signature_name]
    specs = signature.structured_input_signature[1]
    try:
        outputs = signature(**{key: tf.constant(value, specs[key].dtype) for key, value in inputs.items()})
        answers[name] = {key: value.numpy() for key, value in outputs.items()}
    except tf.errors.InvalidArgumentError as error:
        answers[name] = error.message
with open(sys.argv[3], "wb") as answers_file:
    pickle.dump({"answers": answers, "tf_style imported": "tf_style" in sys.modules}, answers_file)
"""

# The REST body of docs/serving.md; test_the_documented_rest_body_reaches_the_signature keeps the two in step.
SERVING_DOC = os.path.join(programs.REPO, "docs", "serving.md")
DOC_REST_BODY = """\
body = {"signature_name": "stylize",
        "inputs": {"content": b64("photo.jpg"), "style": b64("painting.jpg"), "size": 256, "steps": 40}}"""


def encode_png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels).astype(np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


SMALL_PHOTO, SMALL_PAINTING = encode_png(gradient_image(48, 64)), encode_png(stripes_image(64, 64))


def small_request(signature: str = "stylize", **inputs) -> tuple:
    """(signature, every input) of a request for a 48 px result (one scale) of two steps, `inputs` changed."""
    if signature == "stylize":
        content, style = SMALL_PHOTO, SMALL_PAINTING
    else:
        content, style = gradient_image(48, 64), stripes_image(64, 64)
    return signature, {"content": content, "style": style, "size": 48, "steps": 2, "style_weight": 1.0,
                       "content_weight": 4.0, "init": "content", "seed": 0, "face_boxes": NO_FACES, **inputs}


REFUSED = {
    "size over max_size": (small_request(size=MAX_SIZE + 1), "size] [129] [is out of range"),
    "size zero": (small_request(size=0), "is out of range; give 1 to 128"),
    "steps over max_steps": (small_request(steps=MAX_STEPS + 1), "steps] [61] [is out of range"),
    # Two scales at 64 px, of 10 and 55 steps: each under the limit, 65 together over it.
    "steps over all scales": (small_request(size=64, steps=55), "steps over all scales, more than the limit"),
    "negative weight": (small_request(style_weight=-1.0), "must be non-negative numbers"),
    "unknown init": (small_request(init="style_noise"), "init] [style_noise] [is not one of content, noise"),
    "negative seed": (small_request(seed=-1), "seed] [-1] [is negative"),
    "png bomb header": (small_request(style=png_header_claiming(100_000, 100_000)),
                        "style: the image header claims] [100000] [x] [100000"),
    "undecodable bytes": (small_request(content=b"not an image"), "content: not a JPEG or PNG file"),
    "truncated png": (small_request(content=SMALL_PHOTO[:60]), "PNG"),
    # 192,000 pixels, under max_pixels; seen upscaled to 16 pixels high, over the 128 x 128 a style may have.
    "elongated style": (small_request(style=encode_png(np.full((16, 12_000, 3), 90))),
                        "style: an image of] [12000] [x] [16] [pixels is seen at"),
    "pixels over max_pixels": (small_request("stylize_pixels", content=np.full((500, 500, 3), 100.0, np.float32)),
                               "more than the limit of 200000"),
    "nan pixels": (small_request("stylize_pixels", style=np.full((32, 32, 3), np.nan, np.float32)),
                   "style: the image holds NaN"),
    "too small at the first scale": (small_request(content=encode_png(gradient_image(16, 200)), size=64),
                                     "pixels on its short side at the first scale"),
}


def bundled_pair(size: int) -> tuple:
    """The bundled photo at the result's size and the painting at the size it is seen at, as uint8 pixels.

    `stylize()` resizes its inputs to these sizes with Pillow, the served model with TensorFlow's Lanczos;
    given them at these sizes, neither resizes, and the two run on the same pixels.
    """
    photo = images.load_image(api.SAMPLE_CONTENT)
    painting = images.load_image(api.SAMPLE_STYLE)
    content = images.resize(photo, *ints(scaled_size(*photo.shape[:2], size)))
    style = images.resize(painting, *ints(style_seen_size(*painting.shape[:2], size)))
    return np.rint(content).astype(np.uint8), np.rint(style).astype(np.uint8)


def astronaut_pair(size: int) -> tuple:
    """The bundled astronaut as `stylize()` resizes it to `size` (float pixels, for the pixels signature, which
    takes them as they are), her face as `stylize()` finds it on the photo (in the resized photo's pixels), and
    the painting at the size it is seen at."""
    photo = images.load_image(ASTRONAUT)
    content = images.resize(photo, *ints(scaled_size(*photo.shape[:2], size)))
    face_boxes = np.array(faces.find_faces(photo), np.float32) * (content.shape[0] / photo.shape[0])
    return content, face_boxes, bundled_pair(size)[1].astype(np.float32)


def signature_def(model_dir: str, signature_name: str):
    """A SignatureDef, read from saved_model.pb as TF Serving reads it."""
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(model_dir, "saved_model.pb"), "rb") as saved_model_file:
        saved_model.ParseFromString(saved_model_file.read())
    return saved_model.meta_graphs[0].signature_def[signature_name]


def signature_defaults(model_dir: str, signature_name: str) -> dict:
    """{input: numpy value} of a SignatureDef's `defaults`."""
    return {name: tf.make_ndarray(value) for name, value in signature_def(model_dir, signature_name).defaults.items()}


def doc_rest_inputs(model_dir: str) -> dict:
    """The REST body of docs/serving.md, decoded as TF Serving decodes the columnar format: {"b64": ...} is bytes;
    an input left out takes the SignatureDef's default (tensorflow/cc/saved_model/util.cc, GetInputValues)."""
    files = {"photo.jpg": SMALL_PHOTO, "painting.jpg": SMALL_PAINTING}
    namespace = {"b64": lambda path: {"b64": base64.b64encode(files[path]).decode("ascii")}}
    exec(DOC_REST_BODY, namespace)  # noqa: S102 - the documented lines
    body = json.loads(json.dumps(namespace["body"]))
    assert body["signature_name"] == "stylize"
    inputs = signature_defaults(model_dir, "stylize")
    for name, value in body["inputs"].items():
        inputs[name] = base64.b64decode(value["b64"]) if isinstance(value, dict) else value
    return inputs


def made_once(tmp_path_factory, name: str, make):
    """The directory `make(directory)` fills, made once per test run: under xdist, the first worker to ask
    makes it in the run's shared temporary directory while the others wait for it."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        directory = tmp_path_factory.mktemp(name)
        make(directory)
        return directory
    root = tmp_path_factory.getbasetemp().parent  # this run's, above each worker's own
    directory = root / name
    with open(root / f"{name}.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # released as the file closes
        if not (directory / "made").exists():
            shutil.rmtree(directory, ignore_errors=True)  # what a failed attempt left
            directory.mkdir()
            make(directory)
            (directory / "made").touch()
    return directory


def library_result(content: np.ndarray, style: np.ndarray, **options) -> tuple:
    """`stylize()` as the served model computes, float32 with TensorFlow's own convolution kernels: (the
    result, the last report's total loss)."""
    stylizer = api.Stylizer(log=None, precision="float32", **options)
    stylizer.plan = dataclasses.replace(stylizer.plan, conv_kernels=KernelPlan())
    reports = []
    result = stylizer.stylize(content, style, callbacks=[reports.append])
    return result, reports[-1].losses["total"]


def export_and_serve(directory) -> None:
    """Exports the model through the command line, then sends it every request the tests look at in the served
    process, while this process runs `stylize()` on the pairs whose results the tests compare."""
    export_dir = directory / "stylizer"
    result = programs.in_process("tf_style.export", "--model=stylizer", f"--export_dir={export_dir}",
                                 *[f"--{name}={value}" for name, value in OPTIONS.items()], f"--seed={EXPORT_SEED}",
                                 f"--max_pixels={MAX_PIXELS}", f"--max_size={MAX_SIZE}", f"--max_steps={MAX_STEPS}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {export_dir / '1'} (signatures: stylize, stylize_pixels)"
    model_dir = str(export_dir / "1")

    content, style = bundled_pair(OPTIONS["size"])
    noise_content, noise_style = bundled_pair(NOISE_REQUEST["size"])
    face_content, face_boxes, face_style = astronaut_pair(OPTIONS["size"])
    pair = {"size": OPTIONS["size"], "steps": OPTIONS["steps"], "style_weight": 1.0, "content_weight": 4.0,
            "init": "content", "seed": EXPORT_SEED, "face_boxes": NO_FACES}
    doc_inputs = doc_rest_inputs(model_dir)
    requests = {
        "bundled pair": ("stylize", {**pair, "content": encode_png(content), "style": encode_png(style)}),
        # The pixels signature, from noise: one scale (48 px is initial_size) of 10 steps.
        "noise start": ("stylize_pixels", {**pair, "content": noise_content.astype(np.float32),
                                           "style": noise_style.astype(np.float32), **NOISE_REQUEST}),
        **{name: request for name, (request, _) in REFUSED.items()},
        # The documented body asks for 256 px; this test's model takes at most 128: it reaches the graph's checks.
        "documented body": ("stylize", doc_inputs),
        "documented body at 48 px": ("stylize", {**doc_inputs, "size": 48, "steps": 2}),
        "then a good request": small_request(),
        # Her face as the library finds it: the faces' term, as stylize() adds it.
        "astronaut": ("stylize_pixels", {**pair, "content": face_content, "style": face_style,
                                         "face_boxes": face_boxes}),
        "astronaut without face boxes": ("stylize_pixels", {**pair, "content": face_content, "style": face_style}),
        "bad face boxes": ("stylize_pixels", {**pair, "content": face_content, "style": face_style,
                                              "face_boxes": np.array([[10, 10, 0, 20]], np.float32)}),
    }
    with open(directory / "requests.pickle", "wb") as requests_file:
        pickle.dump(requests, requests_file)
    served_process = subprocess.Popen(
        [sys.executable, "-I", "-c", SERVED_SCRIPT, model_dir, str(directory / "requests.pickle"),
         str(directory / "answers.pickle")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    try:
        expected = {"bundled pair": library_result(content, style, **OPTIONS),
                    "noise start": library_result(noise_content, noise_style, **{**OPTIONS, **NOISE_REQUEST}),
                    "astronaut": library_result(ASTRONAUT, face_style, **OPTIONS)}
        _, stderr = served_process.communicate(timeout=600)
    finally:
        if served_process.poll() is None:
            served_process.kill()
            served_process.wait()
    assert served_process.returncode == 0, stderr
    with open(directory / "expected.pickle", "wb") as expected_file:
        pickle.dump(expected, expected_file)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    return made_once(tmp_path_factory, "stylizer", export_and_serve)


@pytest.fixture(scope="module")
def model_dir(made) -> str:
    return str(made / "stylizer" / "1")


@pytest.fixture(scope="module")
def served(made) -> dict:
    """{request name: outputs, or the InvalidArgument message} from the served process."""
    with open(made / "answers.pickle", "rb") as answers_file:
        answers = pickle.load(answers_file)
    assert not answers["tf_style imported"]
    return answers["answers"]


@pytest.fixture(scope="module")
def expected(made) -> dict:
    """{request name: (image, total loss)} from `stylize()` with the request's options."""
    with open(made / "expected.pickle", "rb") as expected_file:
        return pickle.load(expected_file)


def assert_close_to_the_library(answer, expected: tuple) -> None:
    assert isinstance(answer, dict), answer  # not refused
    image, loss = expected
    difference = np.abs(answer["image"] - image)
    print(f"max {difference.max():.4g}, mean {difference.mean():.3g} grey levels, loss {answer['loss_total']}, "
          f"{loss}")
    assert answer["image"].shape == image.shape
    assert difference.max() <= MAX_DIFFERENCE and difference.mean() <= MEAN_DIFFERENCE
    np.testing.assert_allclose(answer["loss_total"], loss, rtol=LOSS_RTOL)


@pytest.mark.slow
def test_a_process_with_only_tensorflow_paints_what_stylize_paints(served, expected):
    answer = served["bundled pair"]
    assert_close_to_the_library(answer, expected["bundled pair"])
    png_pixels = np.asarray(Image.open(io.BytesIO(answer["image_png_bytes"])))
    np.testing.assert_array_equal(png_pixels, np.clip(np.rint(answer["image"]), 0, 255).astype(np.uint8))


def test_a_noise_start_is_the_one_stylize_draws_from_the_seed(served, expected):
    assert_close_to_the_library(served["noise start"], expected["noise start"])


def test_face_boxes_in_a_request_hold_the_face_as_stylize_does(served, expected):
    # stylize() finds her face on the photo; a request brings it, and the graph draws the same mask.
    assert_close_to_the_library(served["astronaut"], expected["astronaut"])
    assert served["astronaut"]["loss_faces"] > 0
    # With no boxes the term is there but exactly 0: a photo without faces, as stylize() runs it.
    without = served["astronaut without face boxes"]
    assert without["loss_faces"] == 0 and np.abs(without["image"] - served["astronaut"]["image"]).max() > 1
    assert "face_boxes must be rows of finite" in served["bad face boxes"]


def test_requests_over_the_limits_or_malformed_are_invalid_argument_under_a_memory_cap(served):
    for name, (_, message) in REFUSED.items():
        assert isinstance(served[name], str) and message in served[name], (name, served[name])
    assert served["then a good request"]["image"].shape == (36, 48, 3)


def test_the_documented_rest_body_reaches_the_signature(model_dir, served):
    with open(SERVING_DOC, encoding="utf-8") as doc_file:
        assert DOC_REST_BODY in doc_file.read()
    assert sorted(doc_rest_inputs(model_dir)) == sorted(signature_def(model_dir, "stylize").inputs)
    assert re.search(r"size\] \[256\] \[is out of range", served["documented body"]), served["documented body"]
    assert served["documented body at 48 px"]["image"].shape == (36, 48, 3)


def test_the_signature_defs_hold_the_exports_options_as_defaults(model_dir):
    for name in stylizer.SIGNATURE_NAMES:
        defaults = signature_defaults(model_dir, name)
        assert defaults.pop("face_boxes").shape == (0, 4)  # no faces unless a request brings them
        defaults = {key: value.item() for key, value in defaults.items()}
        assert defaults == {"size": 64, "steps": 10, "style_weight": 1.0, "content_weight": 4.0, "init": b"content",
                            "seed": EXPORT_SEED}


def test_a_request_seed_defaults_to_zero_without_an_export_seed():
    assert stylizer.request_defaults(StyleConfig())["seed"].numpy() == stylizer.DEFAULT_SEED == 0


def saved_model_cli(*args):
    return subprocess.run(["saved_model_cli", *args], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


@pytest.mark.slow
def test_saved_model_cli_shows_the_signatures(model_dir):
    result = saved_model_cli("show", "--all", "--dir", model_dir)
    assert result.returncode == 0, result.stderr
    options = {"size": ("DT_INT32", "()"), "steps": ("DT_INT32", "()"), "style_weight": ("DT_FLOAT", "()"),
               "content_weight": ("DT_FLOAT", "()"), "init": ("DT_STRING", "()"), "seed": ("DT_INT64", "()"),
               "face_boxes": ("DT_FLOAT", "(-1, 4)")}
    outputs = {"image": ("DT_FLOAT", "(-1, -1, 3)"), "image_png_bytes": ("DT_STRING", "()"),
               **{f"loss_{term}": ("DT_FLOAT", "()") for term in ("content", "style", "tv", "palette", "faces",
                                                                        "total")}}
    signatures = {}
    for name, body in re.findall(r"signature_def\['(\w+)'\]:\n(.*?)(?=\nsignature_def|\n\S|\Z)", result.stdout,
                                 re.S):
        signatures[name] = {"inputs": {}, "outputs": {}}
        for kind, key, dtype, shape in re.findall(
                r"(inputs|outputs)\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\([^)]*\))", body):
            signatures[name][kind][key] = (dtype, shape)
    assert signatures["stylize"] == {"inputs": {"content": ("DT_STRING", "()"), "style": ("DT_STRING", "()"),
                                                **options}, "outputs": outputs}
    assert signatures["stylize_pixels"] == {"inputs": {"content": ("DT_FLOAT", "(-1, -1, 3)"),
                                                       "style": ("DT_FLOAT", "(-1, -1, 3)"), **options},
                                            "outputs": outputs}


@pytest.mark.slow
def test_saved_model_cli_run_stylizes_a_small_image(model_dir, tmp_path):
    # saved_model_cli run restores the model through TensorFlow's session-based loader, as TF Serving does.
    def literal(data):  # every byte as an escape: --input_exprs splits on ";"
        return "b'" + "".join(f"\\x{byte:02x}" for byte in data) + "'"

    photo = gradient_image(24, 32)
    # face_boxes left out: the loader fills it from the SignatureDef's default, as TF Serving does.
    expressions = (f"content={literal(encode_png(photo))};style={literal(SMALL_PAINTING)};size=32;steps=1;"
                   "style_weight=1.0;content_weight=4.0;init='content';seed=0")
    result = saved_model_cli("run", "--dir", model_dir, "--tag_set", "serve", "--signature_def", "stylize",
                             "--input_exprs", expressions, "--outdir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    image = np.load(tmp_path / "image.npy")
    assert image.shape == (24, 32, 3) and 0 <= image.min() and image.max() <= 255
    assert np.abs(image - photo).mean() > 0.5  # painted, not the photo given back


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_either_optimizer_served_paints_what_stylize_paints(optimizer):
    """The served graph's while_loop carries L-BFGS's history as it carries Adam's moments (in process: the served
    process above tests what a SavedModel is, with the default optimizer)."""
    options = {"size": 48, "initial_size": 0, "initial_steps": None, "steps": 8, "optimizer": optimizer}
    content, style = bundled_pair(48)
    exported = stylizer.ExportedStylizer(StyleConfig(**options), MAX_PIXELS, MAX_SIZE, MAX_STEPS)
    answer = exported.stylize_pixels(tf.constant(content, tf.float32), tf.constant(style, tf.float32), 48, 8, 1.0,
                                     4.0, "content", 0, tf.constant(NO_FACES))
    assert_close_to_the_library({name: value.numpy() for name, value in answer.items()},
                                library_result(content, style, **options))


@pytest.mark.parametrize("options, message", [({"init": "style_colors"}, "starts from the content or from noise"),
                                              ({"original_colors": True}, "the result's own colours")])
def test_the_python_api_refuses_what_the_graph_cannot_do(options, message, tmp_path):
    with pytest.raises(UsageError, match=message):
        stylizer.export_stylizer(str(tmp_path / "models"), **options)
    assert not (tmp_path / "models").exists()


EXPORT_ERRORS = {
    "a stylizer flag without --model=stylizer": (["--steps=5"], "--steps is a flag of --model=stylizer"),
    "max_steps zero": (["--model=stylizer", "--max_steps=0"], "--max_steps must be a positive integer"),
    "default size over max_size": (["--model=stylizer", "--size=512", "--max_size=256"], "is over --max_size=256"),
    "default steps over max_steps": (["--model=stylizer", "--max_steps=100"], "281 steps over all scales"),
    "a start the graph cannot draw": (["--model=stylizer", "--init=style_noise"], "--init=content or --init=noise"),
    "a negative seed": (["--model=stylizer", "--seed=-1"], "--seed must be an integer from 0 to"),
}


@pytest.mark.parametrize("case", sorted(EXPORT_ERRORS))
def test_export_errors_are_one_line_exit_2_and_write_nothing(case, tmp_path):
    args, message = EXPORT_ERRORS[case]
    result = programs.in_process("tf_style.export", f"--export_dir={tmp_path / 'models'}", *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "models").exists()


# Several requests at once into one loaded model, as TF Serving runs them (a thread each), in a process whose
# address space is capped: each is answered or refused, and the process serves the next request after them.
CONCURRENT_SCRIPT = """
import concurrent.futures
import pickle
import resource
import sys
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
with open(sys.argv[2], "rb") as requests_file:
    requests = pickle.load(requests_file)

def answer(request):
    signature_name, inputs = request
    signature = model.signatures[signature_name]
    specs = signature.structured_input_signature[1]
    try:
        outputs = signature(**{key: tf.constant(value, specs[key].dtype) for key, value in inputs.items()})
        return "answered", outputs["image"].shape.as_list()
    except tf.errors.InvalidArgumentError as error:
        return "INVALID_ARGUMENT", error.message
    except tf.errors.ResourceExhaustedError as error:
        return "RESOURCE_EXHAUSTED", error.message

# As a server does, the threads (the request threads and TensorFlow's own pools, which the first request starts)
# exist before the load; then the address space is capped at what the process maps now and `sys.argv[4]` bytes more.
pool = concurrent.futures.ThreadPoolExecutor(len(requests["at once"]))
list(pool.map(answer, [requests["after"]] * len(requests["at once"])))
with open("/proc/self/statm") as statm:
    mapped = int(statm.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (mapped + int(sys.argv[4]), mapped + int(sys.argv[4])))
with pool:
    at_once = list(pool.map(answer, requests["at once"]))
after = answer(requests["after"])
with open(sys.argv[3], "wb") as answers_file:
    pickle.dump({"at once": at_once, "after": after}, answers_file)
"""


# The address space the served process may map beyond what it maps when the requests arrive. Measured on the
# 2-core AMX Xeon: with 128 MiB the three requests at the limits were all answered; with 32 MiB TensorFlow's own
# CPU allocation path crashed the process (SIGSEGV) instead of raising ResourceExhausted, so a cap leaves room for
# the requests a server admits at once (docs/serving.md).
CONCURRENT_HEADROOM = 512 << 20


@pytest.mark.slow
def test_requests_at_once_at_the_limits_are_each_answered_or_refused_and_the_next_is_served(model_dir, tmp_path):
    # 128 px (max_size) in four scales of 10, 13, 16 and 21 steps: 60, max_steps.
    at_the_limits = small_request(content=encode_png(gradient_image(96, 128)), size=MAX_SIZE, steps=21)
    requests = {"at once": [at_the_limits, at_the_limits, small_request(size=MAX_SIZE + 1),
                            small_request("stylize_pixels", size=MAX_SIZE, steps=21,
                                          content=gradient_image(96, 128).astype(np.float32))],
                "after": small_request()}
    with open(tmp_path / "requests.pickle", "wb") as requests_file:
        pickle.dump(requests, requests_file)
    arguments = [model_dir, str(tmp_path / "requests.pickle"), str(tmp_path / "answers.pickle"),
                 str(CONCURRENT_HEADROOM)]
    served = subprocess.run([sys.executable, "-I", "-c", CONCURRENT_SCRIPT, *arguments], capture_output=True,
                            text=True, timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert served.returncode == 0, served.stderr[-2000:]
    with open(tmp_path / "answers.pickle", "rb") as answers_file:
        answers = pickle.load(answers_file)
    outcomes = [outcome for outcome, _ in answers["at once"]]
    assert set(outcomes) <= {"answered", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"}
    assert outcomes[2] == "INVALID_ARGUMENT" and "is out of range" in answers["at once"][2][1]  # over max_size
    assert all(answer == [96, 128, 3] for outcome, answer in answers["at once"] if outcome == "answered")
    assert answers["after"] == ("answered", [36, 48, 3])
