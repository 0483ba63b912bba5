"""tf_style's CLI run in a child process and timed, start-up included: a preset (`time_preset`), the flags it
holds (`preset_flags`), and what a failed run said (`last_error_line`).
"""

import os
import subprocess
import sys
import tempfile
import time
from typing import Optional, Sequence


def preset_flags(preset: str) -> list:
    """The flags a flagfile holds, nested flagfiles expanded, in order (for absl the last one wins)."""
    from absl import flags

    return flags.FlagValues().read_flags_from_files([f"--flagfile={preset}"])


def last_error_line(completed: subprocess.CompletedProcess) -> str:
    """What a failed child process said last on stderr (its one-line error), or its exit status."""
    error_lines = completed.stderr.strip().splitlines()
    return error_lines[-1] if error_lines else f"exit status {completed.returncode}"


def time_preset(preset: str, size: int, extra_args: Sequence[str] = (), output: Optional[str] = None) -> dict:
    """Wall time of `python -m tf_style.main --flagfile=<preset> --size=<size>`, start-up included; the result
    is written to `output`, or to a temporary file that is then removed."""
    arguments = ["-m", "tf_style.main", f"--flagfile={preset}", f"--size={size}"]
    flags_used = preset_flags(preset)  # read now: the file may change while the run takes minutes
    with tempfile.TemporaryDirectory() as output_dir:
        output_flag = f"--output={output or os.path.join(output_dir, 'q.png')}"
        start = time.perf_counter()
        completed = subprocess.run([sys.executable, *arguments, output_flag, *extra_args], capture_output=True,
                                   text=True)
        wall_seconds = time.perf_counter() - start
    result = {"preset": preset, "size": size, "flags": flags_used,
              "command": " ".join(["python", *arguments, f"--output={output or '<tmp>/q.png'}", *extra_args]),
              "wall_seconds": wall_seconds, "returncode": completed.returncode}
    if completed.returncode != 0:
        result["error"] = last_error_line(completed)
    return result
