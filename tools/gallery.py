"""Makes the gallery of docs/examples.md: the defaults on every bundled photo and painting, as one image.

Run from the project's root:  python tools/gallery.py [FLAGS FOR tf_style.main ...]
It stylizes the pairs `tools/gallery_pairs.txt` lists in one batch run (results in saved_outputs/gallery/,
each `<content>__<style>.png`; results that exist are kept, so pass --overwrite to redo them), then writes
saved_outputs/gallery.jpg: one row per pair, content | style | result. Developer tooling, not in the wheel.
"""

import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tf_style import images  # noqa: E402  (after the path set-up, so the checkout's package is the one used)
from tf_style.pairs import read_pairs_file  # noqa: E402

PAIRS_FILE = os.path.join(ROOT, "tools", "gallery_pairs.txt")
RESULTS_DIR = os.path.join(ROOT, "saved_outputs", "gallery")
GALLERY = os.path.join(ROOT, "saved_outputs", "gallery.jpg")
ROW_HEIGHT = 256
GAP = 8


def main(extra_flags):
    status = subprocess.call([sys.executable, "-m", "tf_style.main", f"--pairs={PAIRS_FILE}",
                              f"--output_dir={RESULTS_DIR}"] + extra_flags, cwd=ROOT)
    if status != 0:
        sys.exit(f"gallery: the batch run failed with status {status}; no gallery written")
    rows = []
    for pair in read_pairs_file(PAIRS_FILE, RESULTS_DIR):
        panels = [images.load_image(path) for path in (pair.content, pair.style, pair.output)]
        rows.append(images.contact_sheet(panels, ROW_HEIGHT, GAP))
    width = max(row.shape[1] for row in rows)
    gallery = np.full((len(rows) * (ROW_HEIGHT + GAP) - GAP, width, 3), 255.0, np.float32)
    for index, row in enumerate(rows):
        top = index * (ROW_HEIGHT + GAP)
        gallery[top:top + ROW_HEIGHT, :row.shape[1]] = row
    images.save_image(GALLERY, gallery)
    print(f"gallery: wrote {GALLERY} ({len(rows)} pairs)")


if __name__ == "__main__":
    main(sys.argv[1:])
