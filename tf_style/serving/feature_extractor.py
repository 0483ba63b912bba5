"""The VGG feature extractor as a SavedModel that TF Serving serves: three signatures, written atomically.

Signatures (tag `serve`):
- `serving_default`: `images` float32 [B, H, W, 3] RGB in [0, 255] -> one [B, h, w, C] tensor per exported
  layer, named by the layer (`block2_conv1`).
- `gram`: `images` as above -> the normalized Gram matrix [B, C, C] of each style layer (`block1_conv1_gram`).
- `guided_gram`: `images` as above and `masks` float32 [B, R, H, W] in [0, 1], R regions of each image -> each
  region's guided Gram matrix [B, R, C, C] of each style layer (`block1_conv1_guided_gram`), the masks seen at
  each layer as `--mask_mode` says: the statistics of a region a stylization with `--style_masks` matches. A
  signature of its own: a TF Serving signature has no optional inputs.
- `image_bytes`: `image_bytes` string [B] of encoded JPEG or PNG files (REST clients send {"b64": ...}) ->
  the same outputs as `gram`. The images of one request may differ in size: they go through the network one
  at a time (`tf.map_fn`), so a request needs the memory of its largest image, not of all of them.

TF Serving watches a base directory and serves its highest integer-named subdirectory, so a version is built
in a hidden temporary directory next to it and renamed into place only when complete.
"""

import errno
import os
import shutil
import uuid
from typing import Optional

import tensorflow as tf

from tf_style.config import StyleConfig
from tf_style.errors import UsageError, WriteError
from tf_style.network.features import extractor_for
from tf_style.network.vgg import MIN_INPUT_SIDE
from tf_style.objective.losses import gram_matrix, guided_gram_matrices
from tf_style.objective.masks import layer_masks

# An image_bytes request whose header claims more pixels than this is refused before it is decoded.
# VGG's first block keeps 64 float32 channels per pixel, so one image costs about 256 bytes a pixel
# (4 GB at this limit) while it runs: lower the limit on a server with less memory.
DEFAULT_MAX_PIXELS = 16_000_000

SIGNATURE_NAMES = ("serving_default", "gram", "guided_gram", "image_bytes")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_START = b"\xff\xd8\xff"
# A PNG starts with its 8-byte signature, then the IHDR chunk: length (4), "IHDR" (4), width (4), height (4).
_PNG_HEADER_LENGTH = 24


def _png_or_jpeg_size(data: tf.Tensor) -> tuple:
    """Reads (is_png, is_jpeg, [height, width] int64) from the header of one encoded image, without decoding.

    Zero padding keeps every read in range for a short or truncated file; a truncated PNG then claims a
    0x0 size and fails in the decoder, whose errors are InvalidArgument too.
    """
    header = tf.strings.substr(data + b"\0" * _PNG_HEADER_LENGTH, 0, _PNG_HEADER_LENGTH)
    is_png = tf.logical_and(tf.strings.substr(header, 0, 8) == _PNG_SIGNATURE,
                            tf.strings.substr(header, 12, 4) == b"IHDR")
    is_jpeg = tf.strings.substr(header, 0, 3) == _JPEG_START

    def png_size():
        # Width and height are big-endian unsigned 32-bit: assemble them in int64 so that none turns negative.
        size_bytes = tf.reshape(tf.cast(tf.io.decode_raw(tf.strings.substr(header, 16, 8), tf.uint8), tf.int64),
                                [2, 4])
        width, height = tf.unstack(tf.reduce_sum(size_bytes * [1 << 24, 1 << 16, 1 << 8, 1], axis=1))
        return tf.stack([height, width])

    def jpeg_size():
        # Reads the SOFn marker segment only; it raises InvalidArgument on a damaged header.
        return tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64)

    size = tf.cond(is_png, png_size,
                   lambda: tf.cond(is_jpeg, jpeg_size, lambda: tf.zeros([2], tf.int64)))
    return is_png, is_jpeg, size


def decode_image_checked(data: tf.Tensor, max_pixels: int, input_name: str) -> tf.Tensor:
    """One encoded JPEG or PNG -> float32 [H, W, 3] RGB in [0, 255], refusing it before decoding if too large.

    Transparent pixels are composited on white, as `tf_style.images` does. EXIF orientation is not applied:
    clients send upright pixels. `input_name` is the signature input the bytes came in, for the messages.

    Raises (when run):
        InvalidArgumentError: not a JPEG or PNG, a header claiming more than `max_pixels` pixels or a side
            under MIN_INPUT_SIDE, or bytes the decoder rejects.
    """
    is_png, is_jpeg, size = _png_or_jpeg_size(data)
    height, width = size[0], size[1]
    checks = [
        tf.debugging.Assert(tf.logical_or(is_png, is_jpeg),
                            [f"{input_name}: not a JPEG or PNG file; send the bytes of a .jpg or .png"]),
        # In float64: two 32-bit PNG sides multiply past int64, and a wrapped product would pass the check.
        tf.debugging.Assert(tf.cast(height, tf.float64) * tf.cast(width, tf.float64) <= max_pixels,
                            [f"{input_name}: the image header claims", width, "x", height,
                             f"pixels, more than the limit of {max_pixels}; downscale it before sending"]),
        tf.debugging.Assert(tf.minimum(height, width) >= MIN_INPUT_SIDE,
                            [f"{input_name}: the image header claims", width, "x", height,
                             f"pixels; the network needs at least {MIN_INPUT_SIDE} pixels on each side"]),
    ]
    # The decoders are not stateful, so nothing but an explicit dependency makes them wait for the checks.
    with tf.control_dependencies(checks):
        return tf.cond(is_png, lambda: _decode_png_on_white(data),
                       lambda: tf.cast(tf.io.decode_jpeg(data, channels=3), tf.float32))


def _decode_png_on_white(data: tf.Tensor) -> tf.Tensor:
    rgba = tf.cast(tf.io.decode_png(data, channels=4), tf.float32)
    alpha = rgba[..., 3:] / 255.0
    return rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)


class ExportedFeatureExtractor(tf.Module):
    """The VGG layers a stylization reads, as `tf.function`s that `tf.saved_model.save` turns into signatures.

    Attributes:
        variables_read: the tf.Variables the signatures read (tracked, so that they are saved).
        layer_names: every exported layer (content and style), in the order given.
        style_layers: the layers whose Gram matrices `gram`, `guided_gram` and `image_bytes` return.
        mask_mode: how `guided_gram` sees the masks at each layer (`tf_style.objective.masks.layer_masks`).
        max_pixels: the largest image `image_bytes` decodes.
    """

    def __init__(self, config: StyleConfig, max_pixels: int = DEFAULT_MAX_PIXELS):
        super().__init__(name="tf_style_feature_extractor")
        # In float32 whatever the machine: a served model answers the same on every server.
        self._extractor = extractor_for(config, "float32")
        self.layer_names = self._extractor.layer_names
        self.style_layers = config.style_layers
        self.network = config.network
        self.mask_mode = config.mask_mode
        self.max_pixels = max_pixels
        # Track the tf.Variables inside the Keras 3 variables, not the Keras model. The object graph saves a
        # Keras variable as a new tf.Variable, while the signatures read the one inside: `tf.saved_model.load`
        # copes, but TF Serving's C++ loader restores the copy and fails with "Could not find variable
        # block1_conv1/bias" (keras-team/keras#19274). keras.export.ExportArchive tracks them the same way.
        self.variables_read = [variable.value for variable in self._extractor.model.weights]

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    def features(self, images):
        """[B, H, W, 3] RGB in [0, 255] -> {layer: [B, h, w, C]}."""
        return self._extractor(images)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    def grams(self, images):
        """[B, H, W, 3] RGB in [0, 255] -> {"<style layer>_gram": [B, C, C]}."""
        return self._style_grams(images)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images"),
                                  tf.TensorSpec([None, None, None, None], tf.float32, name="masks")])
    def guided_grams(self, images, masks):
        """[B, H, W, 3] RGB in [0, 255] and [B, R, H, W] masks -> {"<style layer>_guided_gram": [B, R, C, C]}."""
        features = self._extractor(images)
        seen = layer_masks(masks, self.network, self.style_layers, self.mask_mode)
        return {f"{name}_guided_gram": guided_gram_matrices(features[name], seen[name]) for name in self.style_layers}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def grams_of_encoded(self, image_bytes):
        """[B] encoded JPEG/PNG, sizes may differ -> {"<style layer>_gram": [B, C, C]}."""
        output_signature = {f"{name}_gram": tf.TensorSpec([channels, channels], tf.float32)
                            for name, channels in self._style_channels().items()}

        def one_image(data):
            image = decode_image_checked(data, self.max_pixels, "image_bytes")
            return {key: gram[0] for key, gram in self._style_grams(image[tf.newaxis]).items()}

        # One image at a time: a request's memory is that of its largest image, whatever the batch size.
        return tf.map_fn(one_image, image_bytes, fn_output_signature=output_signature, parallel_iterations=1)

    def signatures(self) -> dict:
        """{signature name: concrete function}, for `tf.saved_model.save`."""
        return {"serving_default": self.features.get_concrete_function(),
                "gram": self.grams.get_concrete_function(),
                "guided_gram": self.guided_grams.get_concrete_function(),
                "image_bytes": self.grams_of_encoded.get_concrete_function()}

    def _style_grams(self, images: tf.Tensor) -> dict:
        features = self._extractor(images)
        return {f"{name}_gram": gram_matrix(features[name]) for name in self.style_layers}

    def _style_channels(self) -> dict:
        return {name: self._extractor.model.get_layer(name).filters for name in self.style_layers}


def export_feature_extractor(export_dir: str, version: Optional[int] = None, config: Optional[StyleConfig] = None,
                             max_pixels: int = DEFAULT_MAX_PIXELS, **options) -> str:
    """Writes the feature extractor as the SavedModel `export_dir/<version>/`, the layout TF Serving polls.

    Args:
        export_dir: TF Serving's model base path; created if missing.
        version: the version number (a new subdirectory); None takes one more than the highest present.
        config: the options of the stylizations the model serves; its network options (weights, pooling,
            padding, layers) choose the network, exactly as `tf_style.stylize` builds it: `serving_default`
            returns the content and style layers, `gram` and `image_bytes` the style layers' Gram matrices,
            `guided_gram` those of regions, their masks seen as `mask_mode` says.
            `options` override its fields; None starts from the defaults.
        max_pixels: `image_bytes` refuses an image whose header claims more pixels than this.
        **options: StyleConfig fields, e.g. `pooling="avg", style_layers=("block1_conv1",)`.

    Returns:
        The path of the written version directory.

    Raises:
        UsageError: a bad option, an `export_dir` that is not a writable directory, or an existing version.
    """
    # StyleConfig is where the network's options are validated, with the flags' names.
    config = config.replace(**options) if config is not None else StyleConfig(**options)
    require_limit("max_pixels", max_pixels)
    version_dir = new_version_dir(export_dir, version)
    module = ExportedFeatureExtractor(config, max_pixels)
    return write_version(module, module.signatures(), export_dir, version_dir)


def require_limit(name: str, value) -> None:
    """Refuses, with a UsageError naming `--name`, a limit of a served model that is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UsageError(f"--{name} must be a positive integer, got {value!r}")


def new_version_dir(export_dir: str, version: Optional[int]) -> str:
    """The path of the version directory an export writes: `version`, or the next free one if None.

    Raises:
        UsageError: an `export_dir` that is not a writable directory, a bad or an existing version.
    """
    _check_export_dir(export_dir)
    if version is None:
        version = next_version(export_dir)
    elif isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise UsageError(f"--version must be a non-negative integer, got {version!r}")
    version_dir = os.path.join(export_dir, str(version))
    if os.path.lexists(version_dir):
        raise _version_exists_error(export_dir, version_dir)
    return version_dir


def write_version(module: tf.Module, signatures: dict, export_dir: str, version_dir: str) -> str:
    """Saves `module` with `signatures` as `version_dir` (from `new_version_dir`), atomically; returns its path.

    The model is written to a hidden temporary directory inside `export_dir` and renamed into place, so a
    server watching `export_dir` never loads half a model, and a failure leaves nothing behind.

    Raises:
        UsageError: `export_dir` cannot be written, or another export wrote the version meanwhile.
        WriteError: the save failed (a full disk).
    """
    version = os.path.basename(version_dir)
    try:
        os.makedirs(export_dir, exist_ok=True)
        # Not tempfile.mkdtemp: its mode 0700 would hide the model from a server running as another user.
        temporary_dir = os.path.join(export_dir, f".{version}.{uuid.uuid4().hex}.tmp")
        os.mkdir(temporary_dir)
    except OSError as error:
        raise UsageError(f"cannot write in --export_dir={export_dir}: {error.strerror or error}; choose a "
                         "writable directory") from None
    try:
        try:
            tf.saved_model.save(module, temporary_dir, signatures=signatures)
        except (OSError, tf.errors.OpError) as error:  # a full disk comes as either
            raise WriteError(version_dir, error) from None
        try:
            # On POSIX, renaming a directory onto an existing non-empty one fails: a concurrent export of the
            # same version is refused here rather than overwritten.
            os.rename(temporary_dir, version_dir)
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            raise _version_exists_error(export_dir, version_dir) from None
    except BaseException:
        shutil.rmtree(temporary_dir, ignore_errors=True)
        raise
    return version_dir


def next_version(export_dir: str) -> int:
    """One more than the highest integer-named subdirectory of `export_dir` (1 when there is none)."""
    return 1 + max(_versions(export_dir), default=0)


def _versions(export_dir: str) -> list:
    if not os.path.isdir(export_dir):
        return []
    return [int(name) for name in os.listdir(export_dir) if name.isascii() and name.isdigit()]


def _version_exists_error(export_dir: str, version_dir: str) -> UsageError:
    return UsageError(f"{version_dir} already exists and TF Serving versions must not change once served; "
                      f"leave --version unset for the next free one ({next_version(export_dir)})")


def _check_export_dir(export_dir: str) -> None:
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise UsageError(f"--export_dir={export_dir} is not a directory; give the directory that holds (or "
                         "will hold) the numbered model versions")
    if os.path.isdir(export_dir) and not os.access(export_dir, os.W_OK | os.X_OK):
        raise UsageError(f"--export_dir={export_dir} is not writable; choose a directory you can write to")
