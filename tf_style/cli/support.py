"""What the programs (`tf_style.cli.main`, `export`, `beam`, and `benchmarks/bench.py`) share: how a program is
run (absl's `app.run`, or in process on a fresh `FlagValues`), exit statuses and one-line errors."""

import dataclasses
import sys
from typing import Callable, Optional, Sequence

from absl import app, flags
from absl import logging as absl_logging

from tf_style.cli.flags import define
from tf_style.errors import UsageError, WriteError

# Exit statuses. A usage error (bad flag, bad file) is 2, as absl and argparse use for bad command lines; a
# signal ends a run with 128 + its number, as a shell reports it: 130 for SIGINT, 143 for SIGTERM.
EXIT_DIVERGED = 1
EXIT_USAGE = 2
EXIT_SOME_FAILED = 3
EXIT_WRITE_FAILED = 4  # the machine's fault: a full disk, a read-only directory (errors.WriteError)
EXIT_INTERRUPTED = 128 + 2  # SIGINT


def print_error(program: str, message: str) -> None:
    """One line on stderr: `program: error: message`."""
    print(f"{program}: error: {message}", file=sys.stderr)


def require_no_arguments(argv: Sequence[str]) -> None:
    """Refuses positional arguments: every input is a flag."""
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments {' '.join(argv[1:])}; flags take the form --name=value")


def quiet_logging(flag_values: flags.FlagValues) -> None:
    """Logs warnings and errors only, unless `--verbosity` is given.

    absl's app.run turns INFO logging on, and TensorFlow logs a line there for every checkpoint and a dozen
    for every SavedModel that a user would read as problems.
    """
    if not verbosity_given(flag_values):
        absl_logging.set_verbosity(absl_logging.WARNING)


def verbosity_given(flag_values: flags.FlagValues) -> bool:
    """Whether absl's `--verbosity` is on the command line (a run in process has no such flag)."""
    return "verbosity" in flag_values and flag_values["verbosity"].present


def exit_status(program: str, main: Callable[[], int], on_interrupt: Optional[Callable[[], int]] = None) -> int:
    """Runs an entry point's `main` and returns its exit status.

    A UsageError becomes one line on stderr and EXIT_USAGE, a WriteError one line and EXIT_WRITE_FAILED. A
    KeyboardInterrupt that reaches here goes to `on_interrupt`, which says what happened and returns the status;
    without one it propagates.
    """
    try:
        return main()
    except UsageError as error:
        print_error(program, str(error))
        return EXIT_USAGE
    except WriteError as error:
        print_error(program, str(error))
        return EXIT_WRITE_FAILED
    except KeyboardInterrupt:
        if on_interrupt is None:
            raise
        return on_interrupt()


@dataclasses.dataclass(frozen=True)
class Program:
    """A command-line program: its name, its flags and its `main`.

    Attributes:
        name: the name error lines start with (`tf_style: error: ...`).
        flag_specs: its flags (`tf_style.cli.flags`), defined when it runs.
        main: `main(argv, flag_values)` returns the exit status; argv holds what the flags left.
        on_interrupt: says what a KeyboardInterrupt that reached the top interrupted, returns the status; None:
            "interrupted; nothing was written" and EXIT_INTERRUPTED.
        known_only: leave the flags it does not know in argv (for another parser: Beam's).
    """

    name: str
    flag_specs: tuple
    main: Callable[[list, flags.FlagValues], int]
    on_interrupt: Optional[Callable[[], int]] = None
    known_only: bool = False

    def run(self) -> None:
        """Runs it under absl (`--helpfull`, `--flagfile`, `--verbosity`) and exits with its status."""
        define(flags.FLAGS, self.flag_specs)
        app.run(lambda argv: self.status(argv, flags.FLAGS), flags_parser=self._parse)

    def run_in_process(self, argv: Sequence[str]) -> int:
        """Parses `argv` (without the program name) on a fresh FlagValues and runs it: the exit status.

        What `run` does but for absl's own flags, without a new interpreter: for tests and notebooks.
        """
        flag_values = flags.FlagValues()
        define(flag_values, self.flag_specs, module_name=self.name)
        try:
            remaining = self._parse([self.name, *argv], flag_values)
        except SystemExit as error:
            return error.code
        return self.status(remaining, flag_values)

    def status(self, argv: list, flag_values: flags.FlagValues) -> int:
        return exit_status(self.name, lambda: self.main(argv, flag_values),
                           self.on_interrupt or self._interrupted_before_writing)

    def _interrupted_before_writing(self) -> int:
        # The programs without a handler of their own write their one output atomically, at the end.
        print(f"{self.name}: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED

    def _parse(self, argv: list, flag_values: flags.FlagValues = flags.FLAGS) -> list:
        """Parses the flags; a bad one is reported in one line and exits with EXIT_USAGE."""
        try:
            return flag_values(argv, known_only=self.known_only)
        except flags.Error as error:
            print_error(self.name, f"{error}; see --helpfull")
            sys.exit(EXIT_USAGE)
