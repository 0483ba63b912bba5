"""What the absl entry points (`main.py`, `export.py`, `beam_main.py`, and `benchmarks/bench.py`) share:
quiet TensorFlow start-up and error exits."""

import contextlib
import os
import sys
from typing import Callable, Optional

from tf_style.errors import UsageError

# Exit status for a usage error (bad flag, bad file), as absl and argparse use for bad command lines.
EXIT_USAGE = 2


@contextlib.contextmanager
def native_stderr_silenced():
    """Hides what TensorFlow's C++ core prints to file descriptor 2 while it loads and finds its devices.

    TensorFlow 2.21 logs oneDNN and CUDA notices before its logging is initialized, so
    TF_CPP_MIN_LOG_LEVEL cannot hide them; a user would read them as errors. Python-level errors raised
    inside still reach the user: they are printed after the descriptor is restored.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
            # The first device query prints "failed call to cuInit" on machines without a GPU.
            import tensorflow as tf
            tf.config.list_physical_devices()
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)


def print_error(program: str, message: str) -> None:
    """One line on stderr: `program: error: message`."""
    print(f"{program}: error: {message}", file=sys.stderr)


def exit_status(program: str, main: Callable[[], int], on_interrupt: Optional[Callable[[], int]] = None) -> int:
    """Runs an entry point's `main` and returns its exit status.

    A UsageError becomes one line on stderr and EXIT_USAGE. A KeyboardInterrupt that reaches here goes to
    `on_interrupt`, which says what happened and returns the status; without one it propagates.
    """
    try:
        return main()
    except UsageError as error:
        print_error(program, str(error))
        return EXIT_USAGE
    except KeyboardInterrupt:
        if on_interrupt is None:
            raise
        return on_interrupt()


def flags_parser_for(program: str, known_only: bool = False):
    """An absl `flags_parser` that reports a bad flag in one line and exits with EXIT_USAGE.

    Args:
        program: the name the error line starts with.
        known_only: leave flags absl does not know in the argv it returns (for another parser: Beam's).
    """
    from absl import flags

    def parse(argv):
        try:
            return flags.FLAGS(argv, known_only=known_only)
        except flags.Error as error:
            print_error(program, f"{error}; see --helpfull")
            sys.exit(EXIT_USAGE)

    return parse
