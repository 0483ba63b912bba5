"""Does the preview predict the print? `python -m benchmarks.preview OUT.png CONTENT:STYLE [CONTENT:STYLE ...]`.

For each pair it runs, through the CLI and timed (start-up included), `flags/preview.cfg` (or each of
`--previews`) at 256 px and
`flags/quality.cfg` (the defaults) at 512 and 1024 px, then compares them all at the preview's size (the prints
downscaled, antialiased), each against the painting seen at that size:
- `paint`: the style layers' Gram distance to the painting's on ImageNet VGG19, relative to the photo's (lower:
  more of the painting's texture at the painting's relative stroke size);
- `palette`: the sliced 2-Wasserstein distance of the colours to the painting's (the palette term's view:
  `losses.palette_quantiles`), relative to the photo's.
A preview predicts a print where both are within 15% of the print's. The network is the one tf_style optimizes,
so these say how alike the results are, not how good (that is docs/quality.md's independent judge). The sheet
(OUT.png) shows a row per pair: the preview(s) | 512 px | 1024 px, each resized to the same height; the numbers go
beside it as JSON.
"""

import argparse
import json
import os
import sys
import tempfile

from tf_style.cli.startup import native_stderr_silenced

with native_stderr_silenced():
    import numpy as np
    import tensorflow as tf

    from benchmarks.cli_runs import time_preset
    from benchmarks.report import processor_name
    from tf_style import images
    from tf_style.objective import losses
    from tf_style.config import StyleConfig
    from tf_style.network.features import build_feature_extractor
    from tf_style.network.convolution import KernelPlan

SHEET_HEIGHT = 384
GAP = 8
AGREEMENT = 0.15


def relative_distances(extractor, layers, photo, painting, result) -> dict:
    """`paint` and `palette` of `result` (all three [H, W, 3] in [0, 255]; painting at any size)."""
    def grams(image):
        features = extractor(tf.constant(image[None], tf.float32))
        return [losses.gram_matrix(features[layer]) for layer in layers]

    def gram_distance(first, second):
        return float(np.mean([tf.reduce_sum(tf.square(a - b)) / tf.reduce_sum(tf.square(b)) for a, b in
                              zip(first, second)]))

    def palette_distance(first, second):
        return float(tf.sqrt(tf.reduce_mean(tf.square(losses.palette_quantiles(first[None])
                                                      - losses.palette_quantiles(second[None])))))

    painting_grams, photo_grams, result_grams = grams(painting), grams(photo), grams(result)
    return {"paint": gram_distance(result_grams, painting_grams) / gram_distance(photo_grams, painting_grams),
            "palette": palette_distance(result, painting) / palette_distance(photo, painting)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="the sheet (PNG); the numbers go to the same name with .json")
    parser.add_argument("pairs", nargs="+", help="CONTENT:STYLE image paths")
    parser.add_argument("--previews", default="flags/preview.cfg", help="preview flagfiles, comma-separated: "
                        "each is compared with every print")
    parser.add_argument("--preview_size", type=int, default=256)
    parser.add_argument("--print_preset", default="flags/quality.cfg")
    parser.add_argument("--print_sizes", default="512,1024")
    parser.add_argument("--extra_flags", default="", help="more CLI flags for every run, comma-separated "
                        "(tests make the runs short with them)")
    args = parser.parse_args(argv)
    print_sizes = [int(size) for size in args.print_sizes.split(",")]
    extra = [flag for flag in args.extra_flags.split(",") if flag]
    config = StyleConfig()
    layers = config.style_layers
    extractor = build_feature_extractor(layers, config.weights, config.pooling, "float32", config.padding,
                                        KernelPlan())
    rows, panels = [], []
    with tempfile.TemporaryDirectory() as work:
        for pair in args.pairs:
            content, style = pair.split(":")
            name = f"{os.path.splitext(os.path.basename(content))[0]} x {os.path.splitext(os.path.basename(style))[0]}"
            previews = [(f"preview {preset}", preset, args.preview_size) for preset in args.previews.split(",")]
            runs = previews + [(f"{size} px", args.print_preset, size) for size in print_sizes]
            row = {"pair": name, "runs": {}}
            results = {}
            for index, (label, preset, size) in enumerate(runs):
                path = os.path.join(work, f"{len(rows)}_{index}.png")
                print(f"{name}: {label} ({preset} at {size} px)", file=sys.stderr, flush=True)
                run = time_preset(preset, size, [f"--content={content}", f"--style={style}", *extra], path)
                if run["returncode"] != 0:
                    raise SystemExit(f"{name}: {label} failed: {run['error']}")
                results[label] = images.load_image(path)
                row["runs"][label] = {"size": size, "seconds": run["wall_seconds"]}
            height, width = results[previews[0][0]].shape[:2]
            photo = images.resize(images.load_image(content), height, width)
            painting = images.resize_long_side(images.load_image(style), max(height, width))
            for label, result in results.items():
                seen = images.resize(result, height, width)
                row["runs"][label].update(relative_distances(extractor, layers, photo, painting, seen))
            for label, _, _ in previews:
                preview = row["runs"][label]
                preview["against"] = {}
                for size in print_sizes:
                    printed = row["runs"][f"{size} px"]
                    agrees = all(abs(preview[key] / printed[key] - 1) <= AGREEMENT for key in ("paint", "palette"))
                    preview["against"][f"{size} px"] = {"time_ratio": preview["seconds"] / printed["seconds"],
                                                        "agrees": agrees}
            print(f"{name}: " + "; ".join(f"{label} {run['seconds']:.0f} s paint {run['paint']:.3f} palette "
                                         f"{run['palette']:.3f}" for label, run in row["runs"].items()), flush=True)
            rows.append(row)
            panels.append(images.contact_sheet(list(results.values()), SHEET_HEIGHT))
    with open(os.path.splitext(args.output)[0] + ".json", "w") as numbers:
        json.dump({"processor": f"{processor_name()}, {os.cpu_count()} cores", "agreement": AGREEMENT,
                   "pairs": rows}, numbers, indent=1)
    width = max(panel.shape[1] for panel in panels)
    images.save_image(args.output, np.concatenate(
        [np.pad(panel, [(0, GAP), (0, width - panel.shape[1]), (0, 0)], constant_values=255.0)
         for panel in panels], axis=0)[:-GAP])
    return 0


if __name__ == "__main__":
    sys.exit(main())
