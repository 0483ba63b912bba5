"""Video benchmark: how consistent, how painted and how fast the video mode is, against frames stylized one by
one. `python -m benchmarks.video` from the repository's root (needs the `video` extra).

Clips made from the bundled photos, whose true motion is known:
- `pan`: a camera panning and zooming over the Tübingen photo (`video.synthetic.pan_and_zoom`);
- `cat`: the same pan with the bundled cat photo's middle moving across it the other way, so that the flow has
  a motion boundary and the cat uncovers the town behind it at every frame (disocclusions).

For each clip, in one run, three sets of frames and their measures:
- `input`: the clip itself, the floor of the warping error;
- `independent`: each frame a whole default stylization of its own (`Stylizer.stylize`), the ceiling;
- `video`: the video mode (`VideoStylizer`).
The warping error is Lai et al.'s (ECCV 2018): the mean over consecutive frames of the occlusion-masked squared
difference between frame t+1 and frame t carried along the input's optical flow, pixels in 0..1
(`video.metrics.WarpingError`; the flow and its occlusion mask estimated on the input frames, as theirs).
The style measure is the library's Gram style loss of each result against the painting, unweighted, on the
default network, averaged over frames. Seconds per frame: the first, and the mean of the later ones.
"""

import argparse
import json
import time

import numpy as np

from tf_style import images
from tf_style.api import SAMPLE_CONTENT, SAMPLE_STYLE, Stylizer
from tf_style.config import StyleConfig
from tf_style.objective.targets import compute_targets
from tf_style.objective.terms import objective_for
from tf_style.sizes import style_long_side
from tf_style.video import flow, metrics, synthetic
from tf_style.video.stylize import LONG_TERM_OFFSETS, EarlierFrame, VideoStylizer

CAT_PHOTO = SAMPLE_CONTENT.replace("tubingen.jpg", "chelsea.jpg")


def pan_clip(num_frames: int, height: int, width: int) -> list:
    """The Tübingen photo under a camera panning 4 px a frame right, 1 px down, zooming in 1% a frame."""
    return list(synthetic.pan_and_zoom(images.load_image(SAMPLE_CONTENT), num_frames, height, width, (-4.0, -1.0),
                                       1.01))


def cat_clip(num_frames: int, height: int, width: int) -> list:
    """`pan_clip` with the middle of the cat photo (a third of the frame's height) moving 6 px a frame left."""
    cat = images.load_image(CAT_PHOTO)
    side = height // 3
    top = (cat.shape[0] - min(cat.shape[:2])) // 2
    left = (cat.shape[1] - min(cat.shape[:2])) // 2
    sprite = images.resize(cat[top:top + min(cat.shape[:2]), left:left + min(cat.shape[:2])], side, side)
    frames = []
    for index, background in enumerate(pan_clip(num_frames, height, width)):
        frame = background.astype(np.float32)
        x = width - side - 6 * index - width // 8
        frame[height // 3:height // 3 + side, x:x + side] = sprite
        frames.append(frame.astype(np.uint8))
    return frames


def input_flows(inputs: list) -> list:
    """For each frame after the first, (its backward flow, its consistency weights), estimated on the input
    frames: what the warping error of any results of them is measured along."""
    flows = []
    for index in range(1, len(inputs)):
        backward = flow.optical_flow(inputs[index], inputs[index - 1])
        forward = flow.optical_flow(inputs[index - 1], inputs[index])
        flows.append((backward, flow.consistency_weights(forward, backward)))
    return flows


def measures(results: list, flows: list, style_loss) -> dict:
    """Warping error over the clip along the input's `flows` and mean style loss of float32 [H, W, 3] results."""
    warping = metrics.WarpingError()
    for index, (backward, weights) in enumerate(flows, start=1):
        warping.add(results[index - 1], results[index], backward, weights)
    return {"warping_error": warping.value, "style_loss": float(np.mean([style_loss(result) for result in results]))}


def save_strip(path: str, rows: list, every: int) -> None:
    """Writes rows of frames (each a list of float32 [H, W, 3]), every `every`-th frame, as one picture."""
    picture = np.concatenate([np.concatenate(row[::every], axis=1) for row in rows], axis=0)
    images.save_image(path, picture)


def run(clip_name: str, num_frames: int, size: int, config: StyleConfig, strip: str = "") -> dict:
    height, width = round(size * 3 / 4), size
    inputs = {"pan": pan_clip, "cat": cat_clip}[clip_name](num_frames, height, width)
    contents = [np.asarray(frame, np.float32) for frame in inputs]
    style = SAMPLE_STYLE

    independent = Stylizer(config, log=None)
    style_term = objective_for(config).terms[1]
    extractor = independent.extractor

    # The painting at the size a run sees it.
    painting = images.resize_long_side(images.load_image(style), int(style_long_side(size, config.style_scale)))
    style_targets = compute_targets(extractor, contents[0], [painting], config)["style"]

    def style_loss(result):
        return float(style_term.loss(extractor(result[None]), result[None], style_targets)[0])

    report = {"clip": clip_name, "frames": num_frames, "size": f"{width}x{height}"}
    flows = input_flows(contents)
    report["input"] = measures(contents, flows, style_loss)

    results, seconds = [], []
    independent_results = results
    for content in contents:
        start = time.perf_counter()
        results.append(independent.stylize(content, style))
        seconds.append(time.perf_counter() - start)
    report["independent"] = {**measures(results, flows, style_loss), "first_frame_seconds": seconds[0],
                             "later_frame_seconds": float(np.mean(seconds[1:]))}

    video = VideoStylizer(config, log=None)
    results, seconds, earlier = [], [], []
    for content in contents:
        start = time.perf_counter()
        result = video.stylize_frame(content, style, earlier)
        seconds.append(time.perf_counter() - start)
        results.append(result)
        earlier = (earlier + [EarlierFrame(content, result)])[-max(LONG_TERM_OFFSETS):]
    report["video"] = {**measures(results, flows, style_loss), "first_frame_seconds": seconds[0],
                       "later_frame_seconds": float(np.mean(seconds[1:]))}
    if strip:
        save_strip(strip, [contents, independent_results, results], every=max(1, num_frames // 4))
    report["ratios"] = {
        "warping_error_video_over_independent": report["video"]["warping_error"]
        / report["independent"]["warping_error"],
        "style_loss_video_over_independent": report["video"]["style_loss"] / report["independent"]["style_loss"],
        "later_frame_over_single_image_run": report["video"]["later_frame_seconds"]
        / report["independent"]["later_frame_seconds"]}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default="pan,cat")
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--temporal_weight", type=float, default=StyleConfig().temporal_weight)
    parser.add_argument("--frame_steps", type=int, default=StyleConfig().frame_steps)
    parser.add_argument("--json", help="also write the numbers here")
    parser.add_argument("--strip", help="write the first clip's frames here: the clip, one by one, video mode")
    arguments = parser.parse_args()
    config = StyleConfig(size=arguments.size, temporal_weight=arguments.temporal_weight,
                         frame_steps=arguments.frame_steps, seed=0)
    reports = [run(name, arguments.frames, arguments.size, config, arguments.strip if index == 0 else "")
               for index, name in enumerate(arguments.clips.split(","))]
    for report in reports:
        print(f"{report['clip']} ({report['frames']} frames, {report['size']}, temporal_weight "
              f"{config.temporal_weight}, frame_steps {config.frame_steps}):")
        for mode in ("input", "independent", "video"):
            numbers = report[mode]
            timing = (f", first frame {numbers['first_frame_seconds']:.1f} s, later "
                      f"{numbers['later_frame_seconds']:.1f} s/frame" if "first_frame_seconds" in numbers else "")
            print(f"  {mode:12s} warping error {numbers['warping_error']:.5f}, style loss {numbers['style_loss']:.4f}"
                  f"{timing}")
        ratios = report["ratios"]
        print(f"  video / independent: warping error {ratios['warping_error_video_over_independent']:.2f}x, style "
              f"{ratios['style_loss_video_over_independent']:.2f}x; a later frame costs "
              f"{ratios['later_frame_over_single_image_run']:.2f}x a single-image run")
    if arguments.json:
        with open(arguments.json, "w") as file:
            json.dump(reports, file, indent=1)


if __name__ == "__main__":
    main()
