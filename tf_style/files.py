"""Where the tool writes: checking a directory before the work starts.

The writes themselves are atomic where they happen (`images.save_image`: a temporary file and a rename;
checkpoints: `tf.train.CheckpointManager`, which renames its files into place and then rewrites its index
file atomically), so that a crash or a kill leaves the previous file, never half of a new one.
"""

import os
import tempfile

from tf_style.errors import UsageError


def require_writable_directory(directory: str, what: str, flag: str) -> None:
    """Creates `directory` if it is missing and checks that a file can be written in it.

    Args:
        directory: the directory.
        what: what will be written there, for the message ("output", "checkpoint").
        flag: the flag that chooses the location, for the message ("--output").

    Raises:
        UsageError: a file is in the way, or the directory cannot be created or written.
    """
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".tf_style_probe_"):
            pass
    except OSError as error:
        raise UsageError(f"cannot write {what} in {directory}: {error.strerror or error}; choose a writable "
                         f"location with {flag}") from None
