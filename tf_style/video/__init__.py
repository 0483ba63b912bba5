"""Video building blocks for style transfer of videos (Ruder, Dosovitskiy & Brox, GCPR 2016).

- `clips`: reading a video frame by frame, writing one (H.264, with the source's audio), frame folders.
- `flow`: optical flow between frames, warping, and the paper's consistency weights.
- `shots`: where a clip cuts to a new shot, so that no frame is tied to the one before a cut.
- `metrics`: the warping error of a stylized video (Lai et al., ECCV 2018).
- `synthetic`: a camera panning and zooming over a still picture, with its exact optical flow.

Conventions shared by the modules:
- A frame is uint8 RGB [H, W, 3], as `clips.read_frames` yields it; functions that take frames also take
  float arrays in [0, 255], the package's image convention.
- A flow is float32 [H, W, 2] holding (dx, dy) in pixels, defined on the grid of the frame it starts from:
  `optical_flow(frame_from, frame_to)[y, x] = (dx, dy)` where `frame_from[y, x]` shows the same point as
  `frame_to[y + dy, x + dx]`. The *backward* flow of frame t is `optical_flow(frame_t, frame_t-1)`: for each
  pixel of frame t, where it was in frame t-1. `flow.warp(image_t-1, backward_flow_t)` is aligned with frame t.
- Frame indices count from 0.

OpenCV and imageio-ffmpeg (the `video` extra) are imported only here, and only when first used, so that the
rest of the package, and `pairs.is_video_path`, work without them.
"""
