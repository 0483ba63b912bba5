"""Writing when the machine says no: a full disk and a read-only directory, on small tmpfs mounts the tests make.

Mounting needs root (CI runs as root); elsewhere these tests are skipped with that reason. Root ignores
permission bits, so a read-only directory is a read-only mount, not a chmod.
"""

import os
import re
import subprocess

import numpy as np
import pytest

import programs
from bad_inputs import png_bytes
from tf_style import images
from tf_style.errors import WriteError
from tf_style.files import write_atomically


def _mount_tmpfs(directory, options: str) -> None:
    directory.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")


@pytest.fixture
def full_disk(tmp_path):
    """A directory on a 64 KiB tmpfs whose space is all taken: new files can be made, not filled."""
    directory = tmp_path / "full"
    _mount_tmpfs(directory, "size=64k")
    try:
        with open(directory / "filler", "wb") as filler:
            while True:
                filler.write(b"x" * 4096)
                filler.flush()
    except OSError:
        pass
    yield directory
    subprocess.run(["umount", str(directory)], check=True)


@pytest.fixture
def read_only(tmp_path):
    directory = tmp_path / "read_only"
    _mount_tmpfs(directory, "size=64k,ro")
    yield directory
    subprocess.run(["umount", str(directory)], check=True)


@pytest.fixture
def inputs(tmp_path):
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    content.write_bytes(png_bytes(48, 64))
    style.write_bytes(png_bytes(64, 64))
    return content, style


def _names(directory) -> list:
    return sorted(name for name in os.listdir(directory) if name != "filler")


def test_a_full_disk_is_a_write_error_that_leaves_the_old_file(full_disk):
    path = str(full_disk / "result.png")
    with open(path, "wb"):
        pass  # an empty file fits: an existing (here empty) result
    with pytest.raises(WriteError, match=f"cannot write {path}: No space left on device"):
        images.save_image(path, np.full((48, 64, 3), 100, np.float32))
    assert _names(full_disk) == ["result.png"] and os.path.getsize(path) == 0


def test_a_bug_in_the_writer_stays_itself(tmp_path):
    def broken(file):
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        write_atomically(str(tmp_path / "x.bin"), broken)
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_the_cli_reports_a_full_disk_in_one_line_with_exit_4(full_disk, inputs):
    content, style = inputs
    output = full_disk / "result.png"
    result = programs.stylize(f"--content={content}", f"--style={style}", f"--output={output}", "--size=64",
                              "--steps=2", "--initial_size=0")
    assert result.returncode == 4, result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"tf_style: error: cannot write {output}: No space left on device; free some")
    assert _names(full_disk) == []


@pytest.mark.slow
def test_a_batch_on_a_full_disk_stops_with_its_count(full_disk, inputs, tmp_path):
    content, style = inputs
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", "b.png"):
        (photos / name).write_bytes(content.read_bytes())
    result = programs.stylize(f"--content={photos}", f"--style={style}", f"--output_dir={full_disk}", "--size=64",
                              "--steps=2", "--initial_size=0", "--batch_size=1")
    assert result.returncode == 4, result.stderr
    assert result.stderr.count("\n") == 1
    assert "No space left on device" in result.stderr
    assert "(stopped after writing 0 of 2 results; the rerun does the rest)" in result.stderr
    assert _names(full_disk) == []


def test_a_checkpoint_on_a_full_disk_is_a_write_error(full_disk, inputs, tmp_path):
    content, style = inputs
    result = programs.stylize(f"--content={content}", f"--style={style}", f"--output={tmp_path / 'out.png'}",
                              "--size=64", "--steps=3", "--initial_size=0", "--checkpoint_every=1",
                              f"--checkpoint_dir={full_disk / 'checkpoints'}")
    assert result.returncode == 4, result.stderr
    assert result.stderr == (f"tf_style: error: cannot write {full_disk / 'checkpoints'}: No space left on device; "
                             "free some space or choose a writable location, then run the same command again\n")


def test_a_read_only_output_directory_is_refused_before_the_work(read_only, inputs):
    content, style = inputs
    result = programs.stylize(f"--content={content}", f"--style={style}", f"--output={read_only / 'out.png'}",
                              "--size=64", "--steps=2")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Read-only file system" in result.stderr


def test_tensorboard_events_on_a_full_disk_are_a_write_error(full_disk, inputs, tmp_path):
    content, style = inputs
    result = programs.stylize(f"--content={content}", f"--style={style}", f"--output={tmp_path / 'out.png'}",
                              "--size=64", "--steps=2", "--initial_size=0", f"--logdir={full_disk / 'logs'}")
    assert result.returncode == 4, result.stderr
    assert result.stderr.count("\n") == 1 and "No space left on device" in result.stderr, result.stderr


@pytest.mark.slow
def test_a_beam_job_on_a_full_disk_stops_in_one_line_with_its_count(full_disk, inputs, tmp_path):
    pytest.importorskip("apache_beam")
    content, style = inputs
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", "b.png"):
        (photos / name).write_bytes(content.read_bytes())
    result = programs.in_subprocess("tf_style.beam_main", f"--content_pattern={photos / '*.png'}", f"--style={style}",
                                    f"--output_dir={full_disk}", "--size=64", "--steps=2", "--initial_size=0")
    assert result.returncode == 4, result.stderr
    # Which of the two is written first is the runner's choice.
    expected = (f"tf_style.beam_main: error: cannot write {re.escape(str(full_disk))}/[ab]__style.png: No space left "
                "on device; free some space or choose a writable location, then run the same command again "
                r"\(stopped with 0 of 2 results written; the rerun does the rest\)\n")
    assert re.fullmatch(expected, result.stderr), result.stderr
    assert not [name for name in _names(full_disk) if not name.startswith("beam-temp-")]
