"""Peak resident memory (RSS) of tf_style's step, each size in a fresh child process (`measure_memory`), and of
this process (`peak_rss_mb`): measured, where `tf_style.memory` estimates a run's peak before it starts.
"""

import concurrent.futures
import multiprocessing
import resource
import sys

from tf_style.cli.startup import native_stderr_silenced

# A spawned child imports this module to run `_memory_in_this_process`, and may load TensorFlow here first.
with native_stderr_silenced():
    from benchmarks.steps import TfStyleStep, sample_images

MEMORY_METHOD = (
    "each size in a fresh child process (multiprocessing, spawn): peak RSS (VmHWM) after importing TensorFlow "
    "and loading the images (start), and after building tf_style's step with the chosen plan and running "
    "3 steps (peak)")


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB.

    Linux: VmHWM of /proc/self/status, the peak of this process image only. Not ru_maxrss: a child started by
    fork and exec inherits its parent's peak in it.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20 if sys.platform == "darwin" else 1024)


def _memory_in_this_process(size: int) -> dict:
    sample_images(size)
    start_mb = peak_rss_mb()
    step = TfStyleStep(size)
    for _ in range(3):
        step()
    return {"size": size, "pixels": step.height * step.width, "start_rss_mb": start_mb,
            "peak_rss_mb": peak_rss_mb()}


def measure_memory(size: int) -> dict:
    """Peak RSS of tf_style's step at `size`, in a fresh child process (see MEMORY_METHOD)."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as executor:
        return executor.submit(_memory_in_this_process, size).result()
