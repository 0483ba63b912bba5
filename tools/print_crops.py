"""Draws the print-size pictures of docs/print-size.md from a 4096 px result: a 1024 px view, and two 512 px
crops at 100% beside the same crops of the 1024 px result upsampled 4x with Lanczos.

Run from the project's root, after the 4096 px command of docs/print-size.md:
    python tools/print_crops.py tubingen_starry_night_4096.png
Writes saved_outputs/tubingen_starry_night_4096_view.jpg and tubingen_starry_night_4096_crops.jpg (rows: the
crops; left: the print, right: the 1024 px result upsampled; 8 px white gaps). Developer tooling, not in the wheel.
"""

import os
import sys

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUTS = os.path.join(ROOT, "saved_outputs")
SMALL_RESULT = os.path.join(OUTPUTS, "tubingen_starry_night_1024.png")
CROP = 512
GAP = 8
# (top, left) of each crop in the 4096x3072 result: a patch of sky, and the dark trees above the river wall,
# where the strokes' size shows most.
CROP_CORNERS = ((700, 1500), (1900, 2200))


def main(print_path: str) -> None:
    result = Image.open(print_path).convert("RGB")
    upsampled = Image.open(SMALL_RESULT).convert("RGB").resize(result.size, Image.LANCZOS)
    result.resize((result.width // 4, result.height // 4), Image.LANCZOS).save(
        os.path.join(OUTPUTS, "tubingen_starry_night_4096_view.jpg"), quality=90)
    sheet = Image.new("RGB", (2 * CROP + GAP, len(CROP_CORNERS) * (CROP + GAP) - GAP), "white")
    for row, (top, left) in enumerate(CROP_CORNERS):
        box = (left, top, left + CROP, top + CROP)
        sheet.paste(result.crop(box), (0, row * (CROP + GAP)))
        sheet.paste(upsampled.crop(box), (CROP + GAP, row * (CROP + GAP)))
    sheet.save(os.path.join(OUTPUTS, "tubingen_starry_night_4096_crops.jpg"), quality=90)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tools/print_crops.py RESULT_4096.png")
    main(sys.argv[1])
