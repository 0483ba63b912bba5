"""VGG16's facts, without TensorFlow: its convolution layers, their channels, its input mean, its smallest input.

Every module that needs the network's structure (the config's layer names, the Keras model, the memory
estimate, the image checks) reads it here, so there is one table of it.
"""

import re

# The convolution layers in network order, named as in `keras.applications.VGG16`.
CONV_LAYERS = (
    "block1_conv1", "block1_conv2",
    "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3",
    "block4_conv1", "block4_conv2", "block4_conv3",
    "block5_conv1", "block5_conv2", "block5_conv3",
)

# (layer name, input channels, output channels) of each convolution, in network order.
CONV_SHAPES = tuple(zip(
    CONV_LAYERS,
    (3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512),
    (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512),
))

# ImageNet channel means in BGR order, as the Caffe VGG16 (and `keras.applications.vgg16`) expects.
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)

# VGG16 halves the image four times before block5; a smaller input has no deep features to match.
MIN_INPUT_SIDE = 16


def block_of(layer: str) -> int:
    """The block (1-5) a layer belongs to: `block3_conv2` -> 3. Block b works at 1/2**(b-1) of the input side."""
    return int(re.match(r"block(\d)_conv\d", layer).group(1))


def layers_through_deepest(layer_names) -> tuple:
    """CONV_SHAPES up to and including the deepest of `layer_names`: what a network must run to give them."""
    deepest = max(CONV_LAYERS.index(name) for name in layer_names)
    return CONV_SHAPES[:deepest + 1]
