"""Checkpoints of a stylization, so that an interrupted run resumes where it stopped and ends the same.

A checkpoint holds everything the next step depends on: the image, its moving average, Adam's moments and
step count, the number of steps done at the current scale, the scale, and a fingerprint of the run (the
options that change the result and digests of the input images). `tf.train.CheckpointManager` writes each
checkpoint's files under their final names and only then rewrites its `checkpoint` index file, atomically;
a kill mid-write leaves the index naming the previous, complete checkpoint.

A checkpoint of a different run (other options or images) is refused with a `UsageError` that names what
differs, rather than ignored: ignoring it would let the new run's checkpoints rotate the old run's away.
"""

import dataclasses
import hashlib
import json
import os
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from tf_style.config import WEIGHT_SOURCES, StyleConfig
from tf_style.errors import UsageError, WriteError
from tf_style.files import file_sha256, require_writable_directory

# How many checkpoints a run keeps: the newest, and the one before in case the newest cannot be read.
MAX_TO_KEEP = 2


_IMAGE_HINTS = {
    "content image": "",
    "style images": "",
    "start image": " (with --init=noise or --init=style_noise, give the same --seed each run)",
    "region masks": "",
    "style masks": "",
}

_CHECKPOINT_NAME = "ckpt"
_FINGERPRINT_KEY = "fingerprint/.ATTRIBUTES/VARIABLE_VALUE"
_STEP_KEY = "step/.ATTRIBUTES/VARIABLE_VALUE"
_SCALE_KEY = "scale_index/.ATTRIBUTES/VARIABLE_VALUE"


@dataclasses.dataclass(frozen=True)
class SavedCheckpoint:
    """The newest checkpoint in a directory.

    Attributes:
        path: its prefix, `<directory>/ckpt-<step>`.
        step: steps done over all scales.
        scale_index: the scale it was made at (0-based).
        fingerprint: {what: value} of the run that made it.
    """

    path: str
    step: int
    scale_index: int
    fingerprint: dict


def run_fingerprint(config: StyleConfig, content_image: np.ndarray, style_images: Sequence[np.ndarray],
                    start_image: np.ndarray, compute_dtype: str, jit_compile: bool,
                    content_masks: Optional[np.ndarray] = None,
                    style_masks: Optional[Sequence[Optional[np.ndarray]]] = None) -> dict:
    """What makes two runs the same: the options that change the result, and digests of the input images.

    Args:
        content_masks: [R, H, W] region masks at the output size, or None; style_masks: each style's, or None.

    Returns:
        {"--option": value, ..., "content image": digest, "style images": [digest, ...], "start image": digest,
         with region masks "region masks": [digest, ...] and "style masks": [digest or None, ...], and for a
         weights file "weights file contents": digest} with JSON values.
    """
    fingerprint = {f"--{name}": getattr(config, name) for name in config.options_that_change_the_result()}
    fingerprint.update({"compute dtype": compute_dtype, "XLA": jit_compile,
                        "content image": _digest(content_image),
                        "style images": [_digest(image) for image in style_images],
                        "start image": _digest(start_image)})
    if content_masks is not None:
        # Compared by their pixels, as the images are: the options hold paths or arrays.
        fingerprint["region masks"] = [_digest(mask) for mask in content_masks]
        fingerprint["style masks"] = [None if mask is None else _digest(mask)
                                      for mask in style_masks or [None] * len(content_masks)]
    if config.weights not in WEIGHT_SOURCES:
        # A path names a file whose contents may change under the same name (the bundled sources are checked
        # by their own digests).
        fingerprint["weights file contents"] = file_sha256(config.weights)[:16]
    return json.loads(json.dumps(fingerprint))



def _digest(image: np.ndarray) -> str:
    pixels = np.ascontiguousarray(image, dtype=np.float32)
    return f"{'x'.join(map(str, pixels.shape))}:{hashlib.sha256(pixels.tobytes()).hexdigest()[:16]}"


def read_latest(directory: str) -> Optional[SavedCheckpoint]:
    """The newest checkpoint in `directory`, or None if it holds none.

    Raises:
        UsageError: the index names a checkpoint that cannot be read, or one that tf_style did not write.
    """
    path = tf.train.latest_checkpoint(directory)
    if path is None:
        return None
    try:
        reader = tf.train.load_checkpoint(path)
        return SavedCheckpoint(path, int(reader.get_tensor(_STEP_KEY)), int(reader.get_tensor(_SCALE_KEY)),
                               json.loads(reader.get_tensor(_FINGERPRINT_KEY).decode()))
    except (tf.errors.OpError, ValueError, KeyError, IndexError) as error:  # IndexError: a short data file
        raise UsageError(f"the checkpoint {path} cannot be read ({type(error).__name__}); delete {directory} "
                         "to start over, or give another --checkpoint_dir") from None


def describe_differences(saved: dict, current: dict) -> list:
    """What differs between two fingerprints, as phrases for a message."""
    differences = []
    # A different --init or content image explains a different start image; a hint about it would mislead.
    start_explained = any(saved.get(key) != current.get(key) for key in ("--init", "content image"))
    for key in [*current, *(key for key in saved if key not in current)]:
        if saved.get(key) == current.get(key) or (key == "start image" and start_explained):
            continue
        if key in _IMAGE_HINTS:
            verb = "differ" if key.endswith("s") else "differs"
            differences.append(f"the {key} {verb}{_IMAGE_HINTS[key]}")
        else:
            differences.append(f"{key} was {_show(saved.get(key))}, is {_show(current.get(key))}")
    return differences


def _show(value) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "unset" if value is None else str(value)


class RunCheckpoints:
    """The checkpoints of one run in a directory: finds the one to resume from, saves every few steps.

    Args:
        directory: where the checkpoints go (created if missing).
        fingerprint: `run_fingerprint(...)` of this run.
        every: save every this many steps (and at the end of each scale, and on an interrupt).

    Raises:
        UsageError: the directory cannot be written.
    """

    def __init__(self, directory: str, fingerprint: dict, every: int):
        require_writable_directory(directory, "checkpoints", "--checkpoint_dir")
        self.directory = directory
        self.every = every
        self._fingerprint = fingerprint
        self._checkpoint = None
        self._manager = None
        self._step = None

    def latest(self) -> Optional[SavedCheckpoint]:
        """The checkpoint to resume from, or None to start afresh.

        Raises:
            UsageError: the newest checkpoint is of a different run, or cannot be read.
        """
        saved = read_latest(self.directory)
        if saved is None:
            return None
        differences = describe_differences(saved.fingerprint, self._fingerprint)
        if differences:
            raise UsageError(f"--checkpoint_dir {self.directory} holds a checkpoint (step {saved.step}) of a "
                             f"different run: {'; '.join(differences)}. Rerun with the same options and images "
                             "to resume it, or give another --checkpoint_dir (or delete this one) to start over")
        return saved

    def track(self, state: dict, scale_index: int) -> None:
        """Makes `state` (the variables of one scale's optimization) what `save` and `restore` work on."""
        self._step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self._checkpoint = tf.train.Checkpoint(
            **state, step=self._step,
            scale_index=tf.Variable(scale_index, dtype=tf.int64, trainable=False, name="scale_index"),
            fingerprint=tf.Variable(json.dumps(self._fingerprint, sort_keys=True), dtype=tf.string,
                                    trainable=False, name="fingerprint"))
        self._manager = tf.train.CheckpointManager(self._checkpoint, self.directory, max_to_keep=MAX_TO_KEEP,
                                                   checkpoint_name=_CHECKPOINT_NAME)

    def restore(self, saved: SavedCheckpoint) -> None:
        """Loads a checkpoint of the tracked scale into the tracked variables."""
        try:
            self._checkpoint.restore(saved.path).assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError, IndexError) as error:
            raise UsageError(f"the checkpoint {saved.path} cannot be restored ({type(error).__name__}); delete "
                             f"{self.directory} to start over, or give another --checkpoint_dir") from None

    def save(self, step: int) -> None:
        """Saves the tracked variables as the checkpoint of `step` (steps done over all scales).

        A step that already has a checkpoint is not written again: rewriting the files of the checkpoint the
        index names would not be atomic.

        Raises:
            WriteError: the checkpoint could not be written; the index still names the previous one.
        """
        if os.path.basename(self._manager.latest_checkpoint or "") == f"{_CHECKPOINT_NAME}-{step}":
            return
        self._step.assign(step)
        try:
            self._manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as error:  # TensorFlow reports a full disk as an OpError
            raise WriteError(self._manager.directory, error) from None
