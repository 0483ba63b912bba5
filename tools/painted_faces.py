"""Checks that a painting's faces are not copied into photos that have none.

Run from the project's root:
  python tools/painted_faces.py --paintings=PORTRAIT.jpg[,...] [--photos=A.jpg,B.jpg] [--size=512] [-- FLAGS]
Each photo without a face (by `tf_style.objective.faces.find_faces`, the detector the faces' term uses, with its eye and
skin checks) is stylized with each painting through the command line (the defaults, plus FLAGS), and the result
is searched for faces the same way. A face found there was painted in: the deep style layers reproducing the
portrait's objects instead of its texture. Prints one line a pair and exits 1 if any result has a face; the
results are kept in --output_dir for a look by eye. Default photos: the bundled photos without a face. Developer
tooling, not in the wheel.
"""

import argparse
import glob
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tf_style import images  # noqa: E402  (after the path set-up, so the checkout's package is the one used)
from tf_style.objective.faces import find_faces  # noqa: E402


def stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paintings", required=True, help="comma-separated portrait paintings")
    parser.add_argument("--photos", default=",".join(sorted(glob.glob(os.path.join(
        ROOT, "tf_style", "samples", "photos", "*.jpg")))), help="comma-separated photos")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--output_dir", default=os.path.join(ROOT, "out", "painted_faces"))
    arguments, flags = parser.parse_known_args()
    flags = [flag for flag in flags if flag != "--"]
    os.makedirs(arguments.output_dir, exist_ok=True)
    painted = 0
    for photo in arguments.photos.split(","):
        if find_faces(images.resize_long_side(images.load_image(photo), arguments.size)):
            print(f"{stem(photo)}: has a face of its own; not a test of this")
            continue
        for painting in arguments.paintings.split(","):
            if not find_faces(images.resize_long_side(images.load_image(painting), arguments.size)):
                print(f"{stem(painting)}: the detector finds no face in the painting itself, so it could not find "
                      f"a copy of one either: look by eye")
                continue
            output = os.path.join(arguments.output_dir, f"{stem(photo)}__{stem(painting)}.png")
            run = subprocess.run([sys.executable, "-m", "tf_style.main", f"--content={photo}",
                                  f"--style={painting}", f"--output={output}", f"--size={arguments.size}", *flags],
                                 cwd=ROOT, capture_output=True, text=True)
            if run.returncode != 0:
                print(f"{stem(photo)} x {stem(painting)}: the run failed: {run.stderr.strip().splitlines()[-1:]}")
                return 2
            faces = find_faces(images.load_image(output))
            painted += bool(faces)
            print(f"{stem(photo)} x {stem(painting)}: {len(faces)} face(s) in the result {[list(f) for f in faces]}")
    print(f"{painted} result(s) with a face painted in")
    return 1 if painted else 0


if __name__ == "__main__":
    sys.exit(main())
