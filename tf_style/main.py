"""Stylize: `python -m tf_style.main --content=photo.jpg --style=painting.jpg` (or `tf-style`).

Exit codes: 0 done, 1 diverged (the last finite image is written), 2 bad input (one line on stderr), 4 a file
could not be written (a full disk, a read-only directory: one line on stderr, nothing half-written), 130 and 143
interrupted by SIGINT (Ctrl-C) and SIGTERM (the current image is written, and a checkpoint if asked).

A directory or glob in `--content` or `--style`, or a `--pairs` file, makes it a batch run over every pair:
results go to `--output_dir`, a pair that fails is reported and skipped (exit 3 at the end), pairs whose result
exists are skipped unless `--overwrite`, and an interrupt keeps the results already written (a rerun does the
rest).

A video in `--content` (`--content=clip.mp4`, with the video extra) is stylized frame by frame, each frame held to
the ones before it along the optical flow, into `--output` (a video with the clip's sound, or a folder of
frames); an interrupt keeps the frames done, and the same command carries on from the first missing one.

The program is `tf_style.cli.main`; this module hands over to it.
"""

from tf_style.cli.main import PROGRAM


def run() -> None:
    """Console-script entry point (`tf-style`)."""
    PROGRAM.run()


if __name__ == "__main__":
    run()
