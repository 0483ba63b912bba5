"""The whole stylization as a SavedModel: signatures that run `tf_style.stylize`'s coarse-to-fine optimization
inside the graph, so that TF Serving, or any TensorFlow runtime (C++, Java, Go), paints with no Python.

Signatures (tag `serve`):
- `stylize`: `content` and `style`, string scalars, the bytes of JPEG or PNG files (REST clients send
  {"b64": ...}); `size`, `steps` (int32), `style_weight`, `content_weight` (float32), `init` (string: content
  or noise) and `seed` (int64) scalars, each optional: the SignatureDef holds the export's values as defaults
  (the seed's is `--seed`, or 0 without one: a served request gives the same result every time, where the
  command line draws a seed). Outputs: `image_png_bytes` (string scalar, the result as a PNG file; TF
  Serving's REST API base64-encodes an output whose name ends in `_bytes`), `image` (float32 [H, W, 3] RGB in
  [0, 255]) and the final step's weighted losses `loss_total`, `loss_content`, `loss_style`, `loss_tv`,
  `loss_palette` (float32 scalars).
- `stylize_pixels`: the same, with `content` and `style` as float32 [H, W, 3] RGB tensors in [0, 255].

Inside, one request runs what `CoarseToFine.run` runs for one image (`tf_style.optimization.coarse_to_fine`): the
levels of `pyramid.pyramid_of(config)` and their steps, computed in the graph from the request's `size` and `steps`
(`pyramid.level_sides_and_steps`, the function `pyramid_of` evaluates); the style seen at each scale's size; each
scale started from the last result upsampled plus the photo's detail, with the optimizer's state carried up
(`carried_up`: Adam's moments rescaled, L-BFGS afresh); each scale's steps are `core.run_steps`, a `tf.while_loop`
around `core.step`, the very step the library's train step calls, and its result `core.result`. The loss is
`terms.objective_for(config)`'s terms on targets from `targets.style_statistics` and `targets.batch_targets`, with
the network of `features.extractor_for`, in float32 and with TensorFlow's own convolution kernels. The image, the
optimizer's state and the average are loop-carried tensors, not variables: concurrent requests share nothing but the
network's weights.

What the export fixes: the network, `optimizer`, `learning_rate`, `tv_weight`, `palette_weight`, the style layers'
weights, `style_loss`, `style_scale`, `initial_size`, `initial_steps`, `warm_start_optimizer`, `scale_detail` and
`average_decay` (a preset that sets any of these is an export of its own; the bundled presets differ only in `size`
and `steps`). The graph does not look for faces (OpenCV's detector is no TensorFlow op): a request brings them as
`face_boxes` ([N, 4] x, y, width, height in the content's pixels, as `faces.find_faces` gives them; none by
default), and the faces' term draws its mask from them with the library's `faces.face_mask`. The start is the
content or, with `init` "noise", the noise that `pyramid.noise_start` draws from `seed`, as `stylize()` draws it.
Where the library reads files with Pillow (EXIF rotation applied) and resizes them with Pillow's Lanczos filter (the
content to `size`, the style to the size it is seen at), the graph decodes with TensorFlow and resizes with its
antialiased Lanczos: inputs already at those sizes give the library's result to float rounding, amplified by Adam
(tests/test_export_stylizer.py); larger ones start from slightly other pixels and end elsewhere (measured on the
bundled full-size JPEGs at 96 px: 5.7 grey levels apart on average).

Limits, fixed at export and checked before any decoding or optimizing, each refused with InvalidArgument:
`max_size` (the long side a request may ask for), `max_steps` (its steps over all scales) and `max_pixels`
(what an image's header may claim, `feature_extractor.decode_image_checked`); and, before the network sees it, the
style at the size it is seen at may have no more pixels than a style of a normal shape at `max_size` (a long,
thin style is seen upscaled until its short side has 16 pixels).
"""

from typing import Optional

import tensorflow as tf

from tf_style.config import StyleConfig
from tf_style.errors import UsageError
from tf_style.network.features import extractor_for
from tf_style.network.vgg import MIN_INPUT_SIDE
from tf_style.objective import faces
from tf_style.objective.targets import batch_targets, face_targets, style_statistics
from tf_style.objective.terms import FaceTerm, face_term, objective_for
from tf_style.optimization import core
from tf_style.optimization.pyramid import (level_sides_and_steps, level_start, level_style_size, noise_start,
                                             pyramid_of, resized)
from tf_style.serving import feature_extractor
from tf_style.sizes import scaled_size, style_long_side, style_seen_size

# A request may ask for a result of at most this long side. One float32 step at 1024x768 holds about 3 GB.
DEFAULT_MAX_SIZE = 1024
# ... and for at most this many steps over all its scales (`flags/quality.cfg` takes 281).
DEFAULT_MAX_STEPS = 2000

SIGNATURE_NAMES = ("stylize", "stylize_pixels")
# The starts a request may ask for (`init`): the others need numpy (`color`) or a file.
SERVED_INITS = ("content", "noise")
# A request's `seed` when the export has no --seed.
DEFAULT_SEED = 0

# The options a stylizer export takes beyond the network's: those that change the result, less those a served
# stylization has no use for (one style per request, one image), and the noise start's seed.
STYLIZER_OPTIONS = tuple(name for name in StyleConfig.options_that_change_the_result()
                         if name not in StyleConfig.network_options()
                         + ("style_blend_weights", "content_masks", "style_masks", "temporal_weight",
                            "frame_steps")) + ("seed",)


class ExportedStylizer(tf.Module):
    """`tf_style.stylize` as `tf.function`s that `tf.saved_model.save` turns into the signatures above.

    Args:
        config: the options every request runs with; `size`, `steps`, `style_weight`, `content_weight`, `init`
            and `seed` are the requests' defaults.
        max_pixels, max_size, max_steps: the limits (see the module's docstring).

    Attributes:
        variables_read: the tf.Variables the signatures read (tracked, so that they are saved).
    """

    def __init__(self, config: StyleConfig, max_pixels: int, max_size: int, max_steps: int):
        super().__init__(name="tf_style_stylizer")
        self._config = config
        # In float32 with TensorFlow's own kernels whatever the machine: a served model answers the same on every
        # server, and the library's run with precision="float32" and KernelPlan() is what it is compared with.
        self._extractor = extractor_for(config, "float32")
        # Every request carries the faces' term if the config has one: with no face boxes its mask is 0 and
        # its loss and gradient exactly 0, the library's run of a photo without faces.
        self._faces = bool(config.face_weight)
        self._objective = objective_for(config).with_terms(*([face_term(config)] if self._faces else []))
        # As feature_extractor.ExportedFeatureExtractor, for TF Serving's C++ loader (keras-team/keras#19274).
        self.variables_read = [variable.value for variable in self._extractor.model.weights]
        self.max_pixels, self.max_size, self.max_steps = max_pixels, max_size, max_steps
        # A style of a normal shape is seen with its long side at `size` * `style_scale`.
        self.max_style_pixels = max(MIN_INPUT_SIDE, round(max_size * max(1.0, config.style_scale))) ** 2
        self._optimizer = core.optimizer_named(config.optimizer, config.learning_rate)
        # Tensors as the functions' defaults: tf.saved_model.save writes them into the SignatureDefs.
        defaults = request_defaults(config)
        no_faces = tf.zeros([0, 4], tf.float32)  # `face_boxes`: (x, y, width, height) rows, none by default

        def stylize(content, style, size=defaults["size"], steps=defaults["steps"],
                    style_weight=defaults["style_weight"], content_weight=defaults["content_weight"],
                    init=defaults["init"], seed=defaults["seed"], face_boxes=no_faces):
            """Encoded JPEG or PNG content and style -> {"image_png_bytes", "image", "loss_<term>"}."""
            def decode(data, input_name):
                return feature_extractor.decode_image_checked(data, self.max_pixels, input_name)
            return self._stylize(content, style, decode, size, steps, style_weight, content_weight, init, seed,
                                 face_boxes)

        def stylize_pixels(content, style, size=defaults["size"], steps=defaults["steps"],
                           style_weight=defaults["style_weight"], content_weight=defaults["content_weight"],
                           init=defaults["init"], seed=defaults["seed"], face_boxes=no_faces):
            """[H, W, 3] content and style in [0, 255] -> {"image_png_bytes", "image", "loss_<term>"}."""
            return self._stylize(content, style, self._checked_pixels, size, steps, style_weight, content_weight,
                                 init, seed, face_boxes)

        option_specs = [tf.TensorSpec([], value.dtype, name=name) for name, value in defaults.items()]
        option_specs.append(tf.TensorSpec([None, 4], tf.float32, name="face_boxes"))
        self.stylize = tf.function(stylize, input_signature=[
            tf.TensorSpec([], tf.string, name="content"), tf.TensorSpec([], tf.string, name="style"),
            *option_specs])
        self.stylize_pixels = tf.function(stylize_pixels, input_signature=[
            tf.TensorSpec([None, None, 3], tf.float32, name="content"),
            tf.TensorSpec([None, None, 3], tf.float32, name="style"), *option_specs])

    def signatures(self) -> dict:
        """{signature name: tf.function}, for `tf.saved_model.save`, which writes their defaults into the
        SignatureDefs."""
        return {"stylize": self.stylize, "stylize_pixels": self.stylize_pixels}

    def _checked_pixels(self, image: tf.Tensor, input_name: str) -> tf.Tensor:
        """[H, W, 3] pixels -> the same clipped to [0, 255], as `images.load_image` takes an array; refused
        (InvalidArgument) over `max_pixels`, under MIN_INPUT_SIDE on a side, or holding NaN or infinities."""
        shape = tf.shape(image, out_type=tf.int64)
        checks = [
            tf.debugging.Assert(shape[0] * shape[1] <= self.max_pixels,
                                [f"{input_name}: an image of", shape[1], "x", shape[0],
                                 f"pixels, more than the limit of {self.max_pixels}; downscale it"]),
            tf.debugging.Assert(tf.minimum(shape[0], shape[1]) >= MIN_INPUT_SIDE,
                                [f"{input_name}: an image of", shape[1], "x", shape[0],
                                 f"pixels; the network needs at least {MIN_INPUT_SIDE} pixels on each side"]),
            tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(image)),
                                [f"{input_name}: the image holds NaN or infinite values"]),
        ]
        with tf.control_dependencies(checks):
            return tf.clip_by_value(image, 0.0, 255.0)

    def _stylize(self, content, style, load, size, steps, style_weight, content_weight, init, seed,
                 face_boxes) -> dict:
        """Checks the request's options, then loads the images (`load(input, input name)`: bytes or pixels ->
        [H, W, 3]) and runs."""
        option_checks = [
            tf.debugging.Assert(tf.reduce_any(tf.equal(init, SERVED_INITS)),
                                ["stylize: init", init, f"is not one of {', '.join(SERVED_INITS)}"]),
            tf.debugging.Assert(seed >= 0, ["stylize: seed", seed, "is negative; give 0 or more"]),
            tf.debugging.Assert(tf.logical_and(size >= 1, size <= self.max_size),
                                ["stylize: size", size, f"is out of range; give 1 to {self.max_size}"]),
            tf.debugging.Assert(tf.logical_and(steps >= 1, steps <= self.max_steps),
                                ["stylize: steps", steps, f"is out of range; give 1 to {self.max_steps}"]),
            tf.debugging.Assert(tf.reduce_all(tf.logical_and(tf.math.is_finite([style_weight, content_weight]),
                                                             [style_weight >= 0, content_weight >= 0])),
                                ["stylize: style_weight", style_weight, "and content_weight", content_weight,
                                 "must be non-negative numbers"]),
            tf.debugging.Assert(tf.logical_and(tf.reduce_all(tf.math.is_finite(face_boxes)),
                                               tf.reduce_all(face_boxes[:, 2:] > 0)),
                                ["stylize: face_boxes must be rows of finite (x, y, width, height) with a positive "
                                 "width and height"]),
        ]
        with tf.control_dependencies(option_checks):
            scale_sizes, scale_steps = level_sides_and_steps(size, steps, self._config.initial_size,
                                                             self._config.initial_steps)
        total_steps = tf.reduce_sum(scale_steps)
        steps_check = tf.debugging.Assert(
            total_steps <= self.max_steps,
            ["stylize: steps", steps, "make", total_steps, f"steps over all scales, more than the limit of "
             f"{self.max_steps}; ask for fewer steps"])
        # Neither image is decoded before the options passed: a refused request costs no memory.
        with tf.control_dependencies([steps_check]):
            content_image = load(content, "content")
            style_image = load(style, "style")
        image, losses = self._coarse_to_fine(content_image, style_image, size, scale_sizes, scale_steps,
                                             style_weight, content_weight, init, seed, face_boxes)
        # The pixels `images.save_image` writes: rounded half to even, as np.rint.
        pixels = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
        outputs = {"image": image, "image_png_bytes": tf.io.encode_png(pixels)}
        outputs.update({f"loss_{term}": tf.reshape(losses[term], []) for term in self._objective.names})
        return outputs

    def _coarse_to_fine(self, content, style, size, scale_sizes, scale_steps, style_weight, content_weight, init,
                        seed, face_boxes):
        """`CoarseToFine.run` for one [H, W, 3] content and style, and the content's faces [N, 4] in its own
        pixels: (result [H, W, 3], {term: [1]} final losses)."""
        config = self._config
        height, width = scaled_size(tf.shape(content)[0], tf.shape(content)[1], size)
        first_height, first_width = scaled_size(height, width, scale_sizes[0])
        side_check = tf.debugging.Assert(
            tf.minimum(first_height, first_width) >= MIN_INPUT_SIDE,
            ["stylize: size", size, "makes the result", tf.minimum(first_height, first_width),
             f"pixels on its short side at the first scale; the network needs at least {MIN_INPUT_SIDE}: ask for a "
             "larger size"])
        with tf.control_dependencies([side_check]):
            content_images = resized(content[tf.newaxis], height, width)
        style_height, style_width = style_seen_size(tf.shape(style)[0], tf.shape(style)[1],
                                                    style_long_side(size, config.style_scale))
        style_check = tf.debugging.Assert(
            tf.cast(style_height, tf.int64) * tf.cast(style_width, tf.int64) <= self.max_style_pixels,
            ["style: an image of", tf.shape(style)[1], "x", tf.shape(style)[0], "pixels is seen at", style_width,
             "x", style_height, f"(upscaled until its short side has {MIN_INPUT_SIDE} pixels), more than the limit "
             f"of {self.max_style_pixels} pixels; crop it to a less elongated shape"])
        with tf.control_dependencies([style_check]):
            style_images = resized(style[tf.newaxis], style_height, style_width)
        start_images = tf.cond(tf.equal(init, "noise"), lambda: noise_start(height, width, seed)[tf.newaxis],
                               lambda: content_images)
        face_masks = None
        if self._faces:  # the request's boxes are in the content's pixels: moved to the result's
            to_result = tf.cast(tf.stack([width, height]) / tf.shape(content, out_type=tf.int32)[1::-1], tf.float32)
            face_masks = faces.face_mask(height, width, face_boxes * tf.tile(to_result, [2]))[tf.newaxis]

        optimizer = self._optimizer

        def scale(index, images, optimizer_state, losses):
            long_side = scale_sizes[index]
            scale_height, scale_width = scaled_size(height, width, long_side)
            statistics = style_statistics(
                self._extractor, [resized(style_images, *level_style_size(style_height, style_width, long_side,
                                                                          size))[0]], config)
            targets = batch_targets(self._extractor, resized(content_images, scale_height, scale_width),
                                    [statistics], config)
            if self._faces:
                targets[FaceTerm.name] = face_targets(targets["content"], face_masks)
            start = level_start(images, start_images, scale_height, scale_width, config.scale_detail)
            if config.warm_start_optimizer:
                optimizer_state = tf.cond(index > 0, lambda: optimizer.carried_up(optimizer_state, scale_height,
                                                                                  scale_width),
                                          lambda: optimizer.fresh_state(start))
            else:
                optimizer_state = optimizer.fresh_state(start)
            result, optimizer_state, losses = self._optimize(start, optimizer_state, targets, scale_steps[index],
                                                             style_weight, content_weight)
            return index + 1, result, optimizer_state, losses

        any_images = tf.TensorShape([1, None, None, 3])
        names = self._objective.names
        _, result, _, losses = tf.while_loop(
            lambda index, *_: index < tf.size(scale_sizes), scale,
            (tf.constant(0), start_images, optimizer.fresh_state(start_images), core.no_losses(names, 1)),
            shape_invariants=(tf.TensorShape([]), any_images, optimizer.state_shapes(any_images),
                              core.any_losses(names)),
            parallel_iterations=1)
        return result[0], losses

    def _optimize(self, images, optimizer_state, targets, num_steps, style_weight, content_weight):
        """`Optimization.run` for `num_steps` steps from `images` [1, h, w, 3] and the optimizer's state: (the
        level's result, the optimizer's state, {term: [1]} the last losses), by `core.run_steps`."""
        def losses_and_gradient(images):
            with tf.GradientTape() as tape:
                tape.watch(images)
                losses = self._weighted_losses(images, targets, style_weight, content_weight)
                total = tf.reduce_sum(losses["total"])
            return losses, tape.gradient(total, images)

        decay = core.output_decay(self._optimizer, self._config.average_decay)
        state, losses = core.run_steps(core.start_level(images, optimizer_state), num_steps, losses_and_gradient,
                                       self._optimizer, decay, self._objective.names)
        return core.result(state, num_steps, decay), state.optimizer_state, losses

    def _weighted_losses(self, images, targets, style_weight, content_weight) -> dict:
        """The objective's losses with the request's weights: {term: [1]}."""
        return self._objective.losses(self._extractor, images, targets,
                                      {"style": style_weight, "content": content_weight})


def export_stylizer(export_dir: str, version: Optional[int] = None, config: Optional[StyleConfig] = None,
                    max_pixels: int = feature_extractor.DEFAULT_MAX_PIXELS, max_size: int = DEFAULT_MAX_SIZE,
                    max_steps: int = DEFAULT_MAX_STEPS, **options) -> str:
    """Writes the stylizer as the SavedModel `export_dir/<version>/`, atomically, as `export_feature_extractor`.

    Args:
        export_dir: TF Serving's model base path; created if missing.
        version: the version number (a new subdirectory); None takes one more than the highest present.
        config: the options every request runs with (`size`, `steps`, the two weights, `init` and `seed` are
            the requests' defaults); `options` override its fields; None starts from the defaults.
        max_pixels: an encoded image whose header claims more pixels than this is refused before decoding.
        max_size: the largest long side a request may ask for.
        max_steps: the most Adam steps, over all scales, a request may ask for.
        **options: StyleConfig fields, e.g. `size=256, initial_size=128`.

    Returns:
        The path of the written version directory.

    Raises:
        UsageError: a bad option or limit, defaults over the limits, an `export_dir` that is not a writable
            directory, or an existing version.
    """
    config = config.replace(**options) if config is not None else StyleConfig(**options)
    for name, value in (("max_pixels", max_pixels), ("max_size", max_size), ("max_steps", max_steps)):
        feature_extractor.require_limit(name, value)
    if config.init not in SERVED_INITS:
        raise UsageError(f"--init={config.init}: a served stylization starts from the content or from noise; give "
                         f"--init={' or --init='.join(SERVED_INITS)}")
    if config.original_colors:
        raise UsageError("--original_colors: a served stylization returns the result's own colours; drop "
                         "--original_colors")
    if config.size > max_size:
        raise UsageError(f"--size={config.size} is over --max_size={max_size}: the requests' default would be "
                         "refused; raise --max_size or lower --size")
    default_steps = pyramid_of(config).total_steps
    if default_steps > max_steps:
        raise UsageError(f"the default --steps make {default_steps} steps over all scales, over --max_steps="
                         f"{max_steps}: the requests' default would be refused; raise --max_steps")
    version_dir = feature_extractor.new_version_dir(export_dir, version)
    module = ExportedStylizer(config, max_pixels, max_size, max_steps)
    return feature_extractor.write_version(module, module.signatures(), export_dir, version_dir)


def request_defaults(config: StyleConfig) -> dict:
    """The requests' options and their defaults, in the signatures' order: {name: scalar tensor}."""
    seed = DEFAULT_SEED if config.seed is None else config.seed
    return {"size": tf.constant(config.size, tf.int32), "steps": tf.constant(config.steps, tf.int32),
            "style_weight": tf.constant(config.style_weight, tf.float32),
            "content_weight": tf.constant(config.content_weight, tf.float32),
            "init": tf.constant(config.init, tf.string), "seed": tf.constant(seed, tf.int64)}
