"""Which content × style pairs a batch run covers, and where each result goes.

`--content` and `--style` take files, directories (their image files, not recursive) and glob patterns; a
`--pairs` file lists explicit pairs instead. Each result is `OUTPUT_DIR/<content>__<style>.png`.
"""

import dataclasses
import glob
import os
from typing import Sequence

from tf_style.errors import UsageError

# What a directory listing takes as images; anything else in the directory (notes, sidecars) is not an input.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# What ffmpeg and OpenCV decode and users call videos. Not .gif: a GIF given as a content image is read today
# as a still picture (its first frame), and sending it down the video path instead would change what an
# existing command does; an animated GIF converts with `ffmpeg -i in.gif out.mp4`.
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")

# Characters that make a path a glob pattern (as `glob` reads them).
GLOB_CHARACTERS = "*?["


@dataclasses.dataclass(frozen=True)
class Pair:
    """One content image, one style image, and the path of their result."""

    content: str
    style: str
    output: str


def is_video_path(path) -> bool:
    """Whether a path names a video, by its extension (case-insensitive): one of `VIDEO_EXTENSIONS`."""
    return os.path.splitext(os.fspath(path))[1].lower() in VIDEO_EXTENSIONS


def is_batch(content: str, styles: Sequence[str], pairs_file: str = None) -> bool:
    """Whether the inputs ask for a batch run: a pairs file, or a directory or glob among the inputs."""
    return bool(pairs_file) or any(_is_many(path) for path in [content, *styles])


def expand(path: str, flag: str, videos: bool = False) -> list:
    """The image files a `--content` or `--style` value names: itself, a directory's images, a glob's files.

    Args:
        videos: a directory's videos count too (`--content`: a video is stylized frame by frame).

    Raises:
        UsageError: a directory or pattern with no images in it.
    """
    if os.path.isdir(path):
        extensions = IMAGE_EXTENSIONS + (VIDEO_EXTENSIONS if videos else ())
        found = [os.path.join(path, name) for name in os.listdir(path)
                 if name.lower().endswith(extensions) and os.path.isfile(os.path.join(path, name))]
        if not found:
            raise UsageError(f"{flag}: directory {path} holds no image files ({', '.join(extensions)}); "
                             "give a directory of images, a glob or a file")
        return sorted(found)
    if _is_pattern(path):
        found = [match for match in glob.glob(path) if os.path.isfile(match)]
        if not found:
            raise UsageError(f"{flag}: no files match {path}; check the pattern (quote it, so that the shell "
                             "does not expand it)")
        return sorted(found)
    return [path]


def all_pairs(content: str, styles: Sequence[str], output_dir: str) -> list:
    """Every content image × every style image, content-major."""
    contents = expand(content, "--content", videos=True)
    style_paths = [found for style in styles for found in expand(style, "--style")]
    return named([(content_path, style_path) for content_path in contents for style_path in style_paths],
                  output_dir)


def read_pairs_file(path: str, output_dir: str) -> list:
    """The pairs a `--pairs` file lists: one `content,style` per line; blank lines and `#` comments skipped.

    Relative paths are relative to the pairs file's directory, so a file and its images move together.
    """
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--pairs file {path} cannot be read ({error.__class__.__name__}); give a text file "
                         "with one content,style pair per line") from None
    base = os.path.dirname(path)
    listed = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 2 or not all(fields):
            raise UsageError(f"--pairs file {path}, line {number}: expected content,style, got {line!r}")
        listed.append(tuple(os.path.join(base, field) for field in fields))
    if not listed:
        raise UsageError(f"--pairs file {path} lists no pairs; write one content,style pair per line")
    return named(listed, output_dir)


def output_name(content: str, style: str) -> str:
    """`photos/a.jpg`, `styles/b.png` -> `a__b.png`; a video, `clips/c.mov` -> `c__b.mp4`."""
    return f"{_stem(content)}__{_stem(style)}{'.mp4' if is_video_path(content) else '.png'}"


def named(listed: Sequence[tuple], output_dir: str) -> list:
    """(content, style) pairs with their output paths, `<output_dir>/<content>__<style>.png`; refuses two pairs
    that would write the same file."""
    pairs, seen = [], {}
    for content, style in listed:
        output = os.path.join(output_dir, output_name(content, style))
        if output in seen and seen[output] != (content, style):
            raise UsageError(f"{seen[output][0]} × {seen[output][1]} and {content} × {style} would both be "
                             f"written to {output}; rename one of the images")
        if output not in seen:
            seen[output] = (content, style)
            pairs.append(Pair(content, style, output))
    return pairs


def _is_many(path: str) -> bool:
    return os.path.isdir(path) or _is_pattern(path)


def _is_pattern(path: str) -> bool:
    # A file whose name holds a glob character is still that file.
    return not os.path.exists(path) and any(character in path for character in GLOB_CHARACTERS)


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]
