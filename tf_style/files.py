"""Where the tool writes: checking a directory before the work starts, and writing a file atomically.

Files are written to a temporary name in their directory and renamed into place (`write_atomically`;
checkpoints: `tf.train.CheckpointManager`, which renames its files into place and then rewrites its index
file atomically), so that a crash or a kill leaves the previous file, never half of a new one.
"""

import hashlib
import os
import tempfile
from typing import BinaryIO, Callable

from tf_style.errors import UsageError, WriteError


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


def write_atomically(path: str, write_contents: Callable[[BinaryIO], None]) -> None:
    """Writes a file through a temporary file in the same directory, fsync and a rename.

    A reader (or a crash) sees either the previous file or the complete new one. The file gets the
    permissions `open` would give it (0666 less the umask), not the 0600 of a temporary file.

    Args:
        path: the file to write; its directory is created if missing.
        write_contents: writes the contents to the binary file object it is given.

    Raises:
        WriteError: the file could not be written (an OSError: a full disk, a read-only directory, ...); the
            previous file, if any, is left as it was.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        handle, temporary_path = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                                                  suffix=".tmp")
    except OSError as error:
        raise WriteError(path, error) from None
    try:
        with os.fdopen(handle, "wb") as temporary_file:
            write_contents(temporary_file)
            temporary_file.flush()
            os.fsync(temporary_file.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary_path, 0o666 & ~umask)
        os.replace(temporary_path, path)
    except BaseException as error:
        if os.path.exists(temporary_path):
            os.remove(temporary_path)
        if isinstance(error, OSError):  # the disk, the directory or the device: not the caller's bug
            raise WriteError(path, error) from None
        raise


def file_sha256(path: str) -> str:
    """The SHA-256 of a file's contents, as hex, read a megabyte at a time (weights files are tens of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
