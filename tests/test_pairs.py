"""Which pairs a batch run covers: directories, globs, a pairs file, and the names of the results."""

import os

import pytest

from tf_style import pairs
from tf_style.errors import UsageError


def _touch(path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return str(path)


def test_a_directory_gives_its_image_files_sorted_and_nothing_else(tmp_path):
    for name in ("b.JPG", "a.png", "notes.txt", "c.webp"):
        _touch(tmp_path / "photos" / name)
    (tmp_path / "photos" / "sub.png").mkdir()
    assert [os.path.basename(path) for path in pairs.expand(str(tmp_path / "photos"), "--content")] == [
        "a.png", "b.JPG", "c.webp"]


def test_a_glob_gives_the_files_it_matches(tmp_path):
    for name in ("a.png", "b.png", "c.jpg"):
        _touch(tmp_path / name)
    assert pairs.expand(str(tmp_path / "*.png"), "--style") == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]


def test_a_file_whose_name_looks_like_a_glob_is_that_file(tmp_path):
    path = _touch(tmp_path / "photo[1].png")
    assert pairs.expand(path, "--content") == [path]
    assert not pairs.is_batch(path, [path])


@pytest.mark.parametrize("make, message", [
    (lambda tmp: str(tmp), "holds no image files"),
    (lambda tmp: str(tmp / "*.png"), "no files match"),
])
def test_nothing_to_stylize_is_a_usage_error(tmp_path, make, message):
    with pytest.raises(UsageError, match=message):
        pairs.expand(make(tmp_path), "--content")


def test_every_content_with_every_style_and_the_output_names(tmp_path):
    photos = [_touch(tmp_path / "photos" / name) for name in ("a.jpg", "b.png")]
    style = _touch(tmp_path / "styles" / "starry.jpg")
    other = _touch(tmp_path / "styles" / "hat.png")
    found = pairs.all_pairs(str(tmp_path / "photos"), [style, other], "out")
    assert [(pair.content, pair.style, pair.output) for pair in found] == [
        (photos[0], style, os.path.join("out", "a__starry.png")),
        (photos[0], other, os.path.join("out", "a__hat.png")),
        (photos[1], style, os.path.join("out", "b__starry.png")),
        (photos[1], other, os.path.join("out", "b__hat.png"))]
    assert pairs.is_batch(str(tmp_path / "photos"), [style]) and pairs.is_batch(photos[0], [str(tmp_path / "*")])
    assert not pairs.is_batch(photos[0], [style, other])


def test_two_pairs_that_would_write_one_file_are_refused(tmp_path):
    first = _touch(tmp_path / "x" / "a.jpg")
    _touch(tmp_path / "y" / "a.png")
    style = _touch(tmp_path / "s.jpg")
    with pytest.raises(UsageError, match="would both be written to"):
        pairs.all_pairs(str(tmp_path / "*" / "a.*"), [style], "out")
    # The same pair twice is one pair.
    assert [pair.content for pair in pairs.all_pairs(first, [style, style], "out")] == [first]


def test_a_pairs_file_is_read_relative_to_its_directory(tmp_path):
    listing = tmp_path / "lists" / "pairs.txt"
    listing.parent.mkdir()
    listing.write_text("# photo, painting\n\n../a.jpg, ../s.jpg\n/abs/b.png,s2.jpg\n")
    found = pairs.read_pairs_file(str(listing), "out")
    assert [(pair.content, pair.style) for pair in found] == [
        (str(tmp_path / "lists" / "../a.jpg"), str(tmp_path / "lists" / "../s.jpg")),
        ("/abs/b.png", str(tmp_path / "lists" / "s2.jpg"))]
    assert found[1].output == os.path.join("out", "b__s2.png")


@pytest.mark.parametrize("text, message", [
    ("a.jpg\n", "line 1: expected content,style"),
    ("# nothing\n", "lists no pairs"),
])
def test_a_bad_pairs_file_is_a_usage_error(tmp_path, text, message):
    listing = tmp_path / "pairs.txt"
    listing.write_text(text)
    with pytest.raises(UsageError, match=message):
        pairs.read_pairs_file(str(listing), "out")
    with pytest.raises(UsageError, match="cannot be read"):
        pairs.read_pairs_file(str(tmp_path / "missing.txt"), "out")


def test_is_video_path():
    assert all(map(pairs.is_video_path, ["a.mp4", "b.MOV", "c/d.mkv", "e.webm", "f.avi", "g.m4v"]))
    assert not any(map(pairs.is_video_path, ["a.png", "b.jpg", "c.gif", "mp4", "d.mp4.png"]))
