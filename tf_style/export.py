"""Export for TF Serving: `python -m tf_style.export --export_dir=models/tf_style` (or `tf-style-export`).

Writes the VGG feature extractor that `stylize()` builds for the same network flags (--weights, --pooling,
--padding, --content_layers, --style_layers) as a SavedModel in <export_dir>/<version>/: serving_default gives
the layers' activations, gram and image_bytes the style layers' Gram matrices. With --model=stylizer it writes
the whole stylization instead: stylize and stylize_pixels take a photo and a painting and run the optimization
with the style flags given (size, steps, the two weights, init and seed are also request inputs), refusing
requests over --max_size, --max_steps and --max_pixels.

Exit codes: 0 written (its path on stdout), 2 bad input, 4 the model could not be written (a full disk), 130
interrupted; each failure is one line on stderr, and nothing is written.

The program is `tf_style.cli.export`; this module hands over to it.
"""

from tf_style.cli.export import PROGRAM


def run() -> None:
    """Console-script entry point (`tf-style-export`)."""
    PROGRAM.run()


if __name__ == "__main__":
    run()
