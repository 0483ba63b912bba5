"""Runs the programs for the tests: in process, or in a subprocess where the process itself is under test.

Each run in a subprocess imports TensorFlow again (about 4.5 s on 2 cores), so the tests run a program in
process (`Program.run_in_process`: the same flag definitions, parsing, exit statuses and messages on a fresh
FlagValues), and keep subprocesses for what only a process shows: signals, absl's own flags (`--helpfull`),
what TensorFlow's C++ core prints on start-up, worker processes.
"""

import contextlib
import dataclasses
import io
import os
import select
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Completed:
    """What a run gave, with the names of subprocess.CompletedProcess."""

    returncode: int
    stdout: str
    stderr: str


def in_process(program_module: str, *args, cwd=None) -> Completed:
    """Runs `python -m <program_module> ARGS` in this process: 'tf_style.main', 'tf_style.export', ..."""
    import importlib

    program = importlib.import_module(program_module).PROGRAM
    stdout, stderr = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    os.chdir(cwd or REPO)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            status = program.run_in_process([str(arg) for arg in args])
    finally:
        os.chdir(previous)
    return Completed(status, stdout.getvalue(), stderr.getvalue())


def in_subprocess(program_module: str, *args, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    """Runs `python -m <program_module> ARGS` as a user does, in a new interpreter."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", program_module, *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or REPO, env=environment, timeout=timeout)


def stylize(*args, cwd=None) -> Completed:
    """`python -m tf_style.main ARGS`, in process."""
    return in_process("tf_style.main", *args, cwd=cwd)


def start(program_module: str, *args) -> subprocess.Popen:
    """Starts `python -m <program_module> ARGS` with unbuffered output, for a test that signals it."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", program_module, *map(str, args)], cwd=REPO, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_output(process, text: str, timeout: float = 120) -> None:
    """Reads a subprocess's stdout (unbuffered) until `text` has appeared, for at most `timeout` seconds."""
    seen, deadline = b"", time.monotonic() + timeout
    while text.encode() not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {text!r} after {timeout} s; got {seen[-500:]!r}"
        if select.select([process.stdout.fileno()], [], [], remaining)[0]:
            chunk = os.read(process.stdout.fileno(), 1 << 16)
            assert chunk, f"the subprocess ended before printing {text!r}; got {seen[-500:]!r}"
            seen += chunk
