"""The SavedModel export: signatures as TF Serving and saved_model_cli see them, a reload in a fresh process,
the REST and gRPC requests of docs/serving.md, image_bytes' header checks, atomic writes and the command line's errors.

The model is exported once per module, with two small layers, and probed with 16-64 px images.
"""

import base64
import collections
import io
import json
import os
import re
import subprocess
import sys
import types
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import saved_model_pb2

import programs
from conftest import gradient_image, stripes_image
from tf_style.config import StyleConfig
from tf_style.errors import UsageError
from tf_style.network.features import extractor_for
from tf_style.objective import masks
from tf_style.objective.losses import gram_matrix, guided_gram_matrices
from tf_style.objective.targets import style_statistics
from tf_style.serving import feature_extractor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONTENT_LAYERS = ("block2_conv1",)
STYLE_LAYERS = ("block1_conv1", "block2_conv1")
LAYER_FLAGS = ("--content_layers=block2_conv1", "--style_layers=block1_conv1,block2_conv1")
CHANNELS = {"block1_conv1": 64, "block2_conv1": 128}
MAX_PIXELS = 64 * 64

# The requests that docs/serving.md shows, as data; test_the_serving_doc_shows_these_requests keeps the two in step.
SERVING_DOC = os.path.join(REPO, "docs", "serving.md")
DOC_PNG_B64 = ("iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAGklEQVR42mM8UaHBQApgYiARjGoY1TB0NAAAgJwBiHEHVqAAAAAA"
               "SUVORK5CYII=")
REST_IMAGE_BYTES_BODY = ('{"signature_name": "image_bytes", "instances": [{"b64": "' + DOC_PNG_B64 + '"}]}')
REST_PIXELS_BODY_SOURCE = ('json.dumps({"signature_name": "gram", "instances": '
                           '[[[[128.0, 128.0, 128.0]] * 16] * 16]})')
GRPC_IMAGE_BYTES_REQUEST = """\
request = predict_pb2.PredictRequest()
request.model_spec.name = "tf_style"
request.model_spec.signature_name = "image_bytes"
request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([image_bytes]))"""
GRPC_PIXELS_INPUT = 'request.inputs["images"].CopyFrom(tf.make_tensor_proto(pixels[np.newaxis], dtype=tf.float32))'

# Builds the reference in a fresh interpreter: nothing of this process (traced functions, the Keras model,
# variables) can stand in for what the SavedModel holds.
RELOAD_SCRIPT = """
import sys
import numpy as np
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
inputs = np.load(sys.argv[2])
outputs = {}
for signature in ("serving_default", "gram"):
    for name, value in model.signatures[signature](images=tf.constant(inputs["images"])).items():
        outputs[f"{signature}/{name}"] = value.numpy()
encoded = tf.constant([inputs["png"].tobytes(), inputs["jpeg"].tobytes()])
for name, value in model.signatures["image_bytes"](image_bytes=encoded).items():
    outputs[f"image_bytes/{name}"] = value.numpy()
np.savez(sys.argv[3], **outputs)
"""


def encode(pixels: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels).astype(np.uint8)).save(buffer, image_format)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming width x height, and no pixel data: a decompression bomb's header."""
    def chunk(kind, data):
        return (len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big"))

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real 32x32 JPEG whose start-of-frame marker is rewritten to claim width x height."""
    data = bytearray(encode(stripes_image(32, 32), "JPEG"))
    frame = data.index(b"\xff\xc0")
    data[frame + 5:frame + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def reference_outputs(images: np.ndarray) -> dict:
    """{layer: features} and {layer_gram: Gram} of the in-process extractor."""
    extractor = extractor_for(StyleConfig(content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS), "float32")
    features = extractor(tf.constant(images))
    grams = {f"{name}_gram": gram_matrix(features[name]).numpy() for name in STYLE_LAYERS}
    return {name: value.numpy() for name, value in features.items()}, grams


def run_export_cli(*args):
    return programs.in_process("tf_style.export", *args)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    export_dir = tmp_path_factory.mktemp("models") / "tf_style"
    path = feature_extractor.export_feature_extractor(str(export_dir), content_layers=CONTENT_LAYERS,
                                               style_layers=STYLE_LAYERS, max_pixels=MAX_PIXELS)
    assert path == str(export_dir / "1")
    return export_dir


@pytest.fixture(scope="module")
def model_dir(export_dir):
    return str(export_dir / "1")


@pytest.fixture(scope="module")
def loaded(model_dir):
    return tf.saved_model.load(model_dir)


def test_writes_one_version_directory_and_nothing_else(export_dir):
    assert os.listdir(export_dir) == ["1"]
    assert {"saved_model.pb", "variables"} <= set(os.listdir(export_dir / "1"))


@pytest.mark.slow
def test_a_fresh_process_gets_the_in_process_extractors_outputs(model_dir, tmp_path):
    images = np.stack([gradient_image(48, 64, seed=1), stripes_image(48, 64)])
    png = encode(gradient_image(32, 48, seed=2), "PNG")
    jpeg = encode(stripes_image(64, 40), "JPEG")
    np.savez(tmp_path / "inputs.npz", images=images, png=np.frombuffer(png, np.uint8),
             jpeg=np.frombuffer(jpeg, np.uint8))
    result = subprocess.run([sys.executable, "-c", RELOAD_SCRIPT, model_dir, str(tmp_path / "inputs.npz"),
                             str(tmp_path / "outputs.npz")], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    outputs = dict(np.load(tmp_path / "outputs.npz"))

    features, grams = reference_outputs(images)
    # Images of different sizes in one image_bytes request: each one is compared with its own batch of one.
    decoded = [np.asarray(Image.open(io.BytesIO(png)), np.float32), tf.io.decode_jpeg(jpeg).numpy()]
    image_grams = [reference_outputs(image[np.newaxis].astype(np.float32))[1] for image in decoded]
    expected = {**{f"serving_default/{name}": value for name, value in features.items()},
                **{f"gram/{name}": value for name, value in grams.items()},
                **{f"image_bytes/{name}": np.concatenate([grams_of_one[name] for grams_of_one in image_grams])
                   for name in grams}}
    assert sorted(outputs) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(outputs[name], value, rtol=1e-5, atol=1e-5 * np.abs(value).max(),
                                   err_msg=name)


def saved_model_cli(*args):
    return subprocess.run(["saved_model_cli", *args], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


def parse_signature_defs(text: str) -> dict:
    """`saved_model_cli show --all` -> {signature: {"inputs"|"outputs": {name: (dtype, shape)}}}."""
    signatures = {}
    for name, body in re.findall(r"signature_def\['(\w+)'\]:\n(.*?)(?=\nsignature_def|\n\S|\Z)", text, re.S):
        signatures[name] = {"inputs": {}, "outputs": {}}
        for kind, key, dtype, shape in re.findall(
                r"(inputs|outputs)\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\([^)]*\))", body):
            signatures[name][kind][key] = (dtype, shape)
    return signatures


@pytest.mark.slow
def test_saved_model_cli_shows_the_signatures_with_their_shapes(model_dir):
    result = saved_model_cli("show", "--all", "--dir", model_dir)
    assert result.returncode == 0, result.stderr
    grams = {f"{name}_gram": ("DT_FLOAT", f"(-1, {CHANNELS[name]}, {CHANNELS[name]})") for name in STYLE_LAYERS}
    images = {"images": ("DT_FLOAT", "(-1, -1, -1, 3)")}
    signatures = parse_signature_defs(result.stdout)
    assert {name: signatures[name] for name in feature_extractor.SIGNATURE_NAMES} == {
        "serving_default": {"inputs": images,
                            "outputs": {name: ("DT_FLOAT", f"(-1, -1, -1, {channels})")
                                        for name, channels in CHANNELS.items()}},
        "gram": {"inputs": images, "outputs": grams},
        "guided_gram": {"inputs": {**images, "masks": ("DT_FLOAT", "(-1, -1, -1, -1)")},
                        "outputs": {f"{name}_guided_gram": ("DT_FLOAT", f"(-1, -1, {CHANNELS[name]}, {CHANNELS[name]})")
                                    for name in STYLE_LAYERS}},
        "image_bytes": {"inputs": {"image_bytes": ("DT_STRING", "(-1)")}, "outputs": grams},
    }
    assert result.stdout.count("Method name is: tensorflow/serving/predict") == 4


@pytest.mark.slow
def test_saved_model_cli_run_loads_it_as_tf_serving_does(model_dir, tmp_path):
    # saved_model_cli run restores the variables through a TF1 session, as TF Serving's C++ loader does; a
    # Keras 3 model tracked naively loads in Python but fails here with "Could not find variable".
    png = encode(gradient_image(24, 32, seed=3), "PNG")
    # Every byte as an escape: --input_exprs splits on ";", which repr() would leave bare.
    png_literal = "b'" + "".join(f"\\x{byte:02x}" for byte in png) + "'"
    result = saved_model_cli("run", "--dir", model_dir, "--tag_set", "serve", "--signature_def", "image_bytes",
                             "--input_exprs", f"image_bytes=[{png_literal}]", "--outdir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    _, expected = reference_outputs(np.asarray(Image.open(io.BytesIO(png)), np.float32)[np.newaxis])
    for name, value in expected.items():
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy"), value, rtol=1e-5,
                                   atol=1e-5 * np.abs(value).max(), err_msg=name)


def rest_request_inputs(body: str, signature) -> dict:
    """Tensors from a REST predict body, decoded as TF Serving decodes the row ("instances") format.

    An instance is the value of the signature's only input, or an object of named inputs; an object whose
    only key is "b64" is a base64 string value, not a named input (tensorflow_serving/util/json_tensor.cc).
    """
    def is_b64(value):
        return isinstance(value, dict) and list(value) == ["b64"] and isinstance(value["b64"], str)

    def decode(value):
        return base64.b64decode(value["b64"]) if is_b64(value) else value

    input_specs = signature.structured_input_signature[1]
    instances = [instance if isinstance(instance, dict) and not is_b64(instance)
                 else {next(iter(input_specs)): instance} for instance in json.loads(body)["instances"]]
    return {name: tf.constant([decode(instance[name]) for instance in instances], spec.dtype)
            for name, spec in input_specs.items()}


def test_the_documented_rest_bodies_are_accepted(loaded):
    bodies = [REST_IMAGE_BYTES_BODY, eval(REST_PIXELS_BODY_SOURCE)]  # noqa: S307 - the documented line
    tiny = np.asarray(Image.open(io.BytesIO(base64.b64decode(DOC_PNG_B64))).convert("RGB"), np.float32)
    expected = {"image_bytes": reference_outputs(tiny[np.newaxis])[1],
                "gram": reference_outputs(np.full((1, 16, 16, 3), 128.0, np.float32))[1]}
    for body in bodies:
        signature_name = json.loads(body)["signature_name"]
        signature = loaded.signatures[signature_name]
        outputs = signature(**rest_request_inputs(body, signature))
        assert sorted(outputs) == sorted(expected[signature_name])
        for name, value in expected[signature_name].items():
            np.testing.assert_allclose(outputs[name], value, rtol=1e-5, atol=1e-5 * np.abs(value).max())


class _PredictRequest:
    """Stands in for tensorflow_serving.apis.predict_pb2.PredictRequest, which CI does not install."""

    def __init__(self):
        self.model_spec = types.SimpleNamespace(name="", signature_name="")
        self.inputs = collections.defaultdict(tensor_pb2.TensorProto)


def test_the_documented_grpc_tensor_protos_are_accepted(loaded):
    pixels = np.floor(gradient_image(16, 16))  # the values a PNG keeps
    namespace = {"tf": tf, "np": np, "predict_pb2": types.SimpleNamespace(PredictRequest=_PredictRequest),
                 "image_bytes": encode(pixels, "PNG"), "pixels": pixels}
    exec(GRPC_IMAGE_BYTES_REQUEST, namespace)  # noqa: S102 - the documented lines
    bytes_request = namespace["request"]
    namespace["request"] = _PredictRequest()
    exec(GRPC_PIXELS_INPUT, namespace)  # noqa: S102
    pixels_request = namespace["request"]
    pixels_request.model_spec.signature_name = "gram"

    expected = reference_outputs(pixels[np.newaxis])[1]
    for request in (bytes_request, pixels_request):
        signature = loaded.signatures[request.model_spec.signature_name]
        input_specs = signature.structured_input_signature[1]
        assert sorted(request.inputs) == sorted(input_specs)
        # TF Serving hands the proto to the graph as it is: a dtype other than the signature's is refused.
        assert all(proto.dtype == input_specs[name].dtype.as_datatype_enum
                   for name, proto in request.inputs.items())
        outputs = signature(**{name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()})
        for name, value in expected.items():
            np.testing.assert_allclose(outputs[name], value, rtol=1e-5, atol=1e-5 * np.abs(value).max())


def test_the_serving_doc_shows_these_requests():
    with open(SERVING_DOC, encoding="utf-8") as doc_file:
        doc = doc_file.read()
    for text in (REST_IMAGE_BYTES_BODY, REST_PIXELS_BODY_SOURCE, GRPC_IMAGE_BYTES_REQUEST, GRPC_PIXELS_INPUT):
        assert text in doc


REFUSED_BYTES = {
    "png over the limit": (lambda: encode(gradient_image(64, 65), "PNG"), "more than the limit"),
    "png header claiming 100000x100000": (lambda: png_header_only(100_000, 100_000), "more than the limit"),
    "png header claiming 2^32-1 wide": (lambda: png_header_only(2**32 - 1, 16), "more than the limit"),
    "png header claiming 2^32-1 square": (lambda: png_header_only(2**32 - 1, 2**32 - 1), "more than the limit"),
    "jpeg header claiming 60000x60000": (lambda: jpeg_claiming(60_000, 60_000), "more than the limit"),
    "png under 16 pixels high": (lambda: encode(gradient_image(8, 32), "PNG"), "at least 16"),
    "empty": (lambda: b"", "not a JPEG or PNG"),
    "text": (lambda: b"not an image at all", "not a JPEG or PNG"),
    "gif": (lambda: encode(stripes_image(32, 32), "GIF"), "not a JPEG or PNG"),
    "truncated png": (lambda: encode(gradient_image(32, 32), "PNG")[:60], "PNG"),
    "truncated jpeg": (lambda: encode(gradient_image(32, 32), "JPEG")[:300], "JPEG"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_BYTES))
def test_image_bytes_refuses_bad_images_with_invalid_argument(loaded, case):
    make_bytes, message = REFUSED_BYTES[case]
    good = encode(gradient_image(32, 32), "PNG")
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded.signatures["image_bytes"](image_bytes=tf.constant([good, make_bytes()]))
    # The refusal is that request's alone: the model serves the next one.
    outputs = loaded.signatures["image_bytes"](image_bytes=tf.constant([good]))
    assert outputs["block1_conv1_gram"].shape == (1, 64, 64)


def test_next_version_counts_integer_directories_only(tmp_path):
    for name in ("1", "10", "2", ".11.abc.tmp", "latest", "٣"):
        (tmp_path / name).mkdir()
    assert feature_extractor.next_version(str(tmp_path)) == 11
    assert feature_extractor.next_version(str(tmp_path / "missing")) == 1


def test_a_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    def save_half_then_fail(module, path, signatures):
        open(os.path.join(path, "saved_model.pb"), "wb").close()
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", save_half_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        feature_extractor.export_feature_extractor(str(tmp_path / "models"), content_layers=["block1_conv1"],
                                            style_layers=["block1_conv1"])
    assert os.listdir(tmp_path / "models") == []


def test_a_version_written_meanwhile_by_another_export_is_kept(tmp_path, monkeypatch):
    def save_while_another_export_writes_version_1(module, path, signatures):
        os.makedirs(tmp_path / "models" / "1" / "variables")
        open(os.path.join(path, "saved_model.pb"), "wb").close()

    monkeypatch.setattr(tf.saved_model, "save", save_while_another_export_writes_version_1)
    with pytest.raises(UsageError, match="already exists"):
        feature_extractor.export_feature_extractor(str(tmp_path / "models"), content_layers=["block1_conv1"],
                                            style_layers=["block1_conv1"])
    assert os.listdir(tmp_path / "models") == ["1"]
    assert os.listdir(tmp_path / "models" / "1") == ["variables"]


def test_cli_writes_the_next_free_version(tmp_path):
    export_dir = tmp_path / "models"
    (export_dir / "3").mkdir(parents=True)
    (export_dir / "notes").mkdir()
    result = run_export_cli(f"--export_dir={export_dir}", "--content_layers=block1_conv1",
                            "--style_layers=block1_conv1", "--pooling=avg", "--max_pixels=1000000")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""
    assert f"wrote {export_dir / '4'}" in result.stdout
    assert sorted(os.listdir(export_dir)) == ["3", "4", "notes"]
    assert os.path.isfile(export_dir / "4" / "saved_model.pb")


def _unwritable_dir(tmp_path):
    if os.geteuid() == 0:  # root writes through file permissions, but not into sysfs
        return "/sys"
    path = tmp_path / "read_only"
    path.mkdir()
    path.chmod(0o500)
    return str(path)


def _existing_version(tmp_path):
    (tmp_path / "models" / "1").mkdir(parents=True)
    return str(tmp_path / "models")


def _regular_file(tmp_path):
    (tmp_path / "models.txt").write_text("not a directory")
    return str(tmp_path / "models.txt")


CLI_ERRORS = {
    "unknown layer": (lambda tmp: str(tmp / "models"), ["--style_layers=block1_conv1,block6_conv1"],
                      "unknown layer 'block6_conv1'"),
    "export_dir is a file": (_regular_file, [], "is not a directory"),
    "export_dir not writable": (_unwritable_dir, [], "writ"),
    "existing version": (_existing_version, ["--version=1"], "already exists"),
}


@pytest.mark.parametrize("case", sorted(CLI_ERRORS))
def test_cli_errors_are_one_line_exit_2_and_write_nothing(case, tmp_path):
    make_export_dir, args, message = CLI_ERRORS[case]
    export_dir = make_export_dir(tmp_path)
    before = sorted(os.walk(tmp_path))
    result = run_export_cli(f"--export_dir={export_dir}", *LAYER_FLAGS, *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1, result.stderr
    assert error_lines[0].startswith("tf_style.export: error: ") and message in error_lines[0]
    assert sorted(os.walk(tmp_path)) == before


def test_decoding_waits_for_the_header_checks(model_dir):
    # Decoders are stateless ops, which a tf.function runs as soon as their input is ready unless a control
    # dependency holds them: without one, a decompression bomb would be decoded while its check runs.
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(model_dir, "saved_model.pb"), "rb") as saved_model_file:
        saved_model.ParseFromString(saved_model_file.read())
    functions = saved_model.meta_graphs[0].graph_def.library.function
    decoding = {function.signature.name for function in functions
                if any(node.op in ("DecodePng", "DecodeJpeg") for node in function.node_def)}
    branch_nodes = [node for function in functions for node in function.node_def
                    if {node.attr["then_branch"].func.name, node.attr["else_branch"].func.name} & decoding]
    assert branch_nodes
    for node in branch_nodes:
        checks = [name for name in node.input if name.startswith("^") and "Assert" in name]
        assert len(checks) == 3, list(node.input)


@pytest.mark.slow
def test_the_served_gram_is_the_style_losss_gram_bit_for_bit(tmp_path, extractor):
    # Default options on both sides: the export builds the network `stylize()` builds (padding, pooling,
    # weights), and its `gram` is the statistic the style loss matches, to the last bit in float32.
    path = feature_extractor.export_feature_extractor(str(tmp_path / "models"))
    served = tf.saved_model.load(path).signatures["gram"](images=tf.constant(gradient_image(40, 56)[None]))
    config = StyleConfig()
    style_grams = style_statistics(extractor, [gradient_image(40, 56)], config).grams
    assert set(served) == {f"{name}_gram" for name in config.style_layers}
    for name in config.style_layers:
        np.testing.assert_array_equal(served[f"{name}_gram"].numpy(), style_grams[name].numpy())


def test_the_served_guided_gram_is_the_regions_gram_as_a_stylization_sees_it(loaded):
    images = np.stack([gradient_image(48, 64, seed=1), stripes_image(48, 64)])
    top = np.zeros((48, 64), np.float32)
    top[:20] = 1.0
    region_masks = np.stack([np.stack([top, 1.0 - top])] * 2)  # [2 images, 2 regions, 48, 64]
    served = loaded.signatures["guided_gram"](images=tf.constant(images), masks=tf.constant(region_masks))
    features = extractor_for(StyleConfig(content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS), "float32")(
        tf.constant(images))
    seen = masks.layer_masks(region_masks, StyleConfig().network, STYLE_LAYERS, StyleConfig().mask_mode)
    for name in STYLE_LAYERS:
        expected = guided_gram_matrices(features[name], seen[name]).numpy()
        np.testing.assert_allclose(served[f"{name}_guided_gram"].numpy(), expected, rtol=1e-5,
                                   atol=1e-5 * np.abs(expected).max())


def test_ctrl_c_during_an_export_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(feature_extractor, "export_feature_extractor", interrupted)
    result = run_export_cli(f"--export_dir={tmp_path / 'models'}")
    assert (result.returncode, result.stderr) == (130, "tf_style.export: interrupted; nothing was written\n")
    assert not (tmp_path / "models").exists()
