"""Draws the two region masks (docs/regions.md) of the bundled photo of Tübingen: its sky, and the rest (the town).

Run from the project's root:  python tools/tubingen_masks.py
Writes saved_outputs/masks/tubingen_sky.png and tubingen_town.png (white: the region), the photo's size, and
tubingen_masks_sheet.png: photo | sky | town. The
sky is the clear blue above the roofs: strongly blue pixels in the upper half connected to the top edge, then
closed over the tree's thin branches and softened by a pixel or two at the border. Developer tooling, not in
the wheel.
"""

import os
import sys

import numpy as np
from PIL import Image, ImageFilter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tf_style import images  # noqa: E402  (after the path set-up, so the checkout's package is the one used)

PHOTO = os.path.join(ROOT, "tf_style", "samples", "photos", "tubingen.jpg")
MASKS_DIR = os.path.join(ROOT, "saved_outputs", "masks")


def sky_mask(photo: np.ndarray) -> np.ndarray:
    """float32 [H, W] in [0, 1]: 1 in the photo's sky."""
    red, green, blue = photo[..., 0], photo[..., 1], photo[..., 2]
    blue_enough = (blue - red > 60) & (blue > 140) & (blue >= green)
    blue_enough[photo.shape[0] // 2:] = False  # the river below reflects the sky
    sky = _connected_to_top(blue_enough)
    # Closing (a maximum, then a minimum filter) fills the gaps between the bare tree's branches, which are
    # too fine for a style of their own; a median then smooths the roofline's jaggies.
    image = Image.fromarray((sky * 255).astype(np.uint8))
    image = image.filter(ImageFilter.MaxFilter(9)).filter(ImageFilter.MinFilter(9)).filter(ImageFilter.MedianFilter(5))
    return np.asarray(image.filter(ImageFilter.GaussianBlur(1)), np.float32) / 255.0


def _connected_to_top(region: np.ndarray) -> np.ndarray:
    """The part of a boolean [H, W] region connected (4-neighbours) to its top row."""
    connected = np.zeros_like(region)
    connected[0] = region[0]
    while True:
        grown = connected.copy()
        grown[1:] |= connected[:-1]
        grown[:-1] |= connected[1:]
        grown[:, 1:] |= connected[:, :-1]
        grown[:, :-1] |= connected[:, 1:]
        grown &= region
        if (grown == connected).all():
            return connected
        connected = grown


def main():
    os.makedirs(MASKS_DIR, exist_ok=True)
    photo = images.load_image(PHOTO)
    sky = sky_mask(photo)
    panels = [photo]
    for name, mask in (("sky", sky), ("town", 1.0 - sky)):
        path = os.path.join(MASKS_DIR, f"tubingen_{name}.png")
        panels.append(np.repeat(255.0 * mask[..., None], 3, axis=-1))
        images.save_image(path, panels[-1])
        print(f"wrote {path} ({mask.mean():.0%} of the photo)")
    images.save_image(os.path.join(MASKS_DIR, "tubingen_masks_sheet.png"), images.contact_sheet(panels, 192))


if __name__ == "__main__":
    main()
