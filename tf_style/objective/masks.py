"""Region masks (Gatys et al., *Controlling Perceptual Factors in Neural Style Transfer*, CVPR 2017): where each
style paints, at the image's size and as each VGG16 layer sees it.

A mask is float32 in [0, 1]: 1 inside its region, 0 outside, between for a soft blend. A layer's mask follows the
network down: each 2x2 pooling halves it, and in "inside" mode (the default) each 3x3 convolution from block 2 on
erodes it by one position, so that a position counts for a region only where what it sees is in the region (Gatys'
"inside" guidance; their reference code probes the network with noise to find those positions, which for VGG16's
plain stack of 3x3 convolutions and 2x2 poolings is this erosion). Near a border, features see both regions;
counted in either region's statistics, they pull the other region's pixels towards its style, and the result has
a halo of one painting across the border of the other: measured on the example in docs/regions.md, "simple" paints the
sky's blue strokes over the roofs below it. Block 1 is left uneroded: its positions see 2 pixels, and eroded, the
border's pixels belong to no region at any layer; with only the content loss on them they were painted as a line of
saturated green and magenta along the roofline. In "simple" mode a layer's mask is only the image's averaged over
each pooling window.

The guided Gram matrices and the style loss of the regions are `tf_style.objective.losses`' (`guided_gram_matrices`,
`guided_style_loss`).
"""

import numpy as np
import tensorflow as tf

from tf_style.network import vgg


def resize_masks(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Masks at another size, antialiased (no ringing: a mask stays in [0, 1]): [R, H, W] -> [R, height, width]."""
    if masks.shape[-2:] == (height, width):
        return masks
    resized = tf.image.resize(masks[..., None], (height, width), method="bilinear", antialias=True)[..., 0]
    return np.clip(resized.numpy(), 0.0, 1.0).astype(np.float32)


def layer_masks(masks, network: vgg.Network, layer_names, mode: str) -> dict:
    """Each layer's view of the masks: [..., H, W] (masks at the image's size) -> {layer: float32 [..., h, w]}.

    Args:
        masks: float32 in [0, 1].
        network: the VGG whose layers see the masks (its convolutions erode them).
        layer_names: its layers; each mask has the shape of that layer's feature maps.
        mode: "inside" (eroded by each convolution's reach from block 2 on) or "simple" (downsampled only); see
            the module.
    """
    shape = tf.shape(masks)
    current = tf.reshape(tf.cast(masks, tf.float32), tf.concat([[-1], shape[-2:], [1]], axis=0))
    wanted = set(layer_names)
    by_layer = {}
    for name, _, _ in network.layers_through_deepest(layer_names):
        if vgg.pooled_before(name):
            # The pooling's windows, as VGG's (2x2, stride 2, an odd last row or column dropped).
            current = (_minimum_pool(current, 2, "VALID") if mode == "inside"
                       else tf.nn.avg_pool2d(current, 2, 2, "VALID"))
        if mode == "inside" and vgg.block_of(name) > 1:
            # A 3x3 convolution's output sees one position around it (block 1's 2 pixels are let be: see the
            # module). Past the image's edge the network sees padding, not another region: "SAME" pooling leaves
            # out the positions beyond the edge.
            current = _minimum_pool(current, 3, "SAME", strides=1)
        if name in wanted:
            by_layer[name] = tf.reshape(current, tf.concat([shape[:-2], tf.shape(current)[1:3]], axis=0))
    return by_layer


def _minimum_pool(values: tf.Tensor, window: int, padding: str, strides: int = None) -> tf.Tensor:
    return -tf.nn.max_pool2d(-values, window, strides or window, padding)


def region_areas(masks: dict) -> dict:
    """Each mask's area at each layer, in positions: {layer: [N, h, w]} -> {layer: [N]}."""
    return {name: tf.reduce_sum(mask, axis=[-2, -1]) for name, mask in masks.items()}
