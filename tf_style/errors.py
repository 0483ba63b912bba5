"""Errors that are the user's to fix, as opposed to bugs.

A `UsageError` carries one sentence that says what is wrong and how to fix it; the command-line entry points
print it as a single line and exit with status 2. Any other exception is a bug and keeps its traceback.
"""


class UsageError(Exception):
    """Bad input from the user: a flag value, an image file, an output path."""


class DivergedError(Exception):
    """The optimization produced a non-finite loss or image.

    Attributes:
        step: the step at which the non-finite value was seen.
        image: the last finite image, float32 [H, W, 3], to save instead of a broken one.
    """

    def __init__(self, message: str, step: int, image):
        super().__init__(message)
        self.step = step
        self.image = image
