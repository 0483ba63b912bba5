"""Errors that are the user's to fix, as opposed to bugs, and the two ways a run can stop early.

A `UsageError` carries one sentence that says what is wrong and how to fix it; the command-line entry points
print it as a single line and exit with status 2. A `WriteError` is the machine's fault, not the input's (a
full disk, a read-only or vanished directory, an I/O error while writing): one line too, and exit status 4.
Any other exception is a bug and keeps its traceback.

`DivergedError` and `Interrupted` carry what the run had achieved when it stopped, so that the caller can
save it: the library itself never writes the output and never installs signal handlers.
"""

import re


class UsageError(Exception):
    """Bad input from the user: a flag value, an image file, an output path."""


class OutOfMemory(UsageError):
    """The device could not hold a step's tensors (TensorFlow's ResourceExhaustedError, on a GPU foremost:
    there the memory check cannot see what other processes hold). The user's to fix with a smaller size."""


class WriteError(Exception):
    """A file could not be written: the disk is full, the directory is read-only or gone, the device failed.

    Attributes:
        path: the file that was being written; nothing half-written is left at it.
    """

    def __init__(self, path: str, error: Exception):
        reason = getattr(error, "strerror", None)
        if not reason:
            # TensorFlow's messages name the function and the temporary file before the cause ("...; No space
            # left on device [Op:SaveV2]"), or put the cause first and the steps that failed after it, a line each.
            message = getattr(error, "message", None) or str(error) or type(error).__name__
            first_line = message.strip().splitlines()[0]
            reason = re.sub(r"\s*\[Op:\w+\].*$", "", first_line.split("; ")[-1].strip())
        super().__init__(f"cannot write {path}: {reason}; free some space or choose a writable location, then "
                         "run the same command again")
        self.path = path


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
