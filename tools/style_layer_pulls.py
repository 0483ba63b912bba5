"""Measures how hard each style layer pulls on the image: the table behind `vgg.STYLE_LAYER_BALANCE`.

Run from the project's root:  python tools/style_layer_pulls.py [--weights=imagenet] [--size=512]
For every bundled photo and painting it takes the style loss of one layer alone (`losses.style_loss_terms`' form,
the painting's Gram as the target, the photo as the image) and the mean absolute gradient it puts on the photo's
pixels, and prints each layer's median over the pairs relative to block1_conv1, as Python. Developer tooling,
not in the wheel.
"""

import argparse
import glob
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import tensorflow as tf  # noqa: E402

from tf_style import images, vgg  # noqa: E402  (after the path set-up, so the checkout's package is the one used)
from tf_style.network.features import build_feature_extractor  # noqa: E402
from tf_style.network.convolution import KernelPlan  # noqa: E402
from tf_style.objective.losses import gram_matrix, normalized_squared_error  # noqa: E402


def layer_pulls(extractor, photo: np.ndarray, painting: np.ndarray) -> dict:
    """{layer: mean |d loss / d pixel|} for each layer's style loss alone."""
    targets = {name: gram_matrix(value) for name, value in extractor(painting[None]).items()}
    image = tf.constant(photo[None])
    pulls = {}
    for name in extractor.layer_names:
        with tf.GradientTape() as tape:
            tape.watch(image)
            loss = normalized_squared_error(gram_matrix(extractor(image)[name]), targets[name])
        pulls[name] = float(tf.reduce_mean(tf.abs(tape.gradient(loss, image))))
    return pulls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    network = vgg.network_for(args.weights)
    extractor = build_feature_extractor(network.conv_layers, args.weights, "max", "float32", "replicate",
                                        KernelPlan())
    samples = os.path.join(ROOT, "tf_style", "samples")
    photos = sorted(glob.glob(os.path.join(samples, "photos", "*.jpg")))
    paintings = sorted(glob.glob(os.path.join(samples, "paintings", "*.jpg")))
    relative = {name: [] for name in network.conv_layers}
    for photo_path in photos:
        photo = images.resize_long_side(images.load_image(photo_path), args.size)
        for painting_path in paintings:
            painting = images.resize_long_side(images.load_image(painting_path), args.size)
            pulls = layer_pulls(extractor, photo, painting)
            for name in network.conv_layers:
                relative[name].append(pulls[name] / pulls["block1_conv1"])
            print(f"# {os.path.basename(photo_path)} x {os.path.basename(painting_path)}: "
                  + " ".join(f"{pulls[name] / pulls['block1_conv1']:.3g}" for name in network.conv_layers),
                  file=sys.stderr)
    print(f"# {args.weights} ({network.name}), {args.size} px, median over {len(photos) * len(paintings)} pairs of "
          "each layer's pull relative to block1_conv1's")
    print("{" + ", ".join(f'"{name}": {np.median(values):.3g}' for name, values in relative.items()) + "}")


if __name__ == "__main__":
    main()
