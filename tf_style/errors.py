"""Errors that are the user's to fix, as opposed to bugs, and the two ways a run can stop early.

A `UsageError` carries one sentence that says what is wrong and how to fix it; the command-line entry points
print it as a single line and exit with status 2. Any other exception is a bug and keeps its traceback.

`DivergedError` and `Interrupted` carry what the run had achieved when it stopped, so that the caller can
save it: the library itself never writes the output and never installs signal handlers.
"""


class UsageError(Exception):
    """Bad input from the user: a flag value, an image file, an output path."""


class _StoppedEarly:
    """Mixin: an early stop that carries the step it stopped at and the image to save."""

    def __init__(self, message: str, step: int, image):
        super().__init__(message)
        self.step = step
        self.image = image


class DivergedError(_StoppedEarly, Exception):
    """The optimization produced a non-finite loss or image.

    Attributes:
        step: the step at which the non-finite value was seen.
        image: the last finite result at the output size, to save instead of a broken one: float32
            [H, W, 3] from `stylize`, [B, H, W, 3] from the batch-level `Optimization.run` and
            `CoarseToFine.run`; None if no step had given a finite image yet.
    """


class Interrupted(_StoppedEarly, KeyboardInterrupt):
    """The run was interrupted (Ctrl-C, or a KeyboardInterrupt raised by a signal handler) between steps.

    A KeyboardInterrupt, so that `except Exception` does not swallow it and an uncaught one in a notebook
    reads as the interrupt it is.

    Attributes:
        step: steps done over all scales when the interrupt arrived.
        image: the current result (the moving average) at the output size, shaped as for `DivergedError`;
            None if the first step had not finished.
    """
