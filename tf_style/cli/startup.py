"""A quiet TensorFlow start-up, imported by every program before anything that loads TensorFlow."""

import contextlib
import os
import sys


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
    except KeyboardInterrupt:
        # Ctrl-C while TensorFlow loads (seconds): nothing has started, so there is nothing to report but that.
        os.dup2(saved_stderr, 2)
        print("tf_style: interrupted while starting; nothing was written", file=sys.stderr)
        sys.exit(128 + 2)
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
