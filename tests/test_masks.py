"""Region masks (Gatys et al. 2017): each layer's view of a mask, guided Gram matrices against hand-made
expectations, the loss's weighting by area, a two-region run, and the checks made before any work."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import tf_style
from conftest import gradient_image, stripes_image
from programs import stylize as run_cli
from tf_style.config import DEFAULT_STYLE_LAYERS, StyleConfig
from tf_style.errors import UsageError
from tf_style.network import vgg
from tf_style.objective import losses, masks
from tf_style.objective.targets import StyleStatistics, batch_targets
from tf_style.objective.terms import GuidedStyleTerm, Objective

FAST = dict(size=64, steps=3, initial_size=0, progress_every=1, log=None)


def _top_rows(height: int, width: int, rows: int) -> np.ndarray:
    mask = np.zeros((height, width), np.float32)
    mask[:rows] = 1.0
    return mask


def _erode(mask: np.ndarray) -> np.ndarray:
    """A 3x3 minimum with the image's edge left out, by hand."""
    padded = np.pad(mask, 1, constant_values=np.inf)
    return np.min([padded[i:i + mask.shape[0], j:j + mask.shape[1]] for i in range(3) for j in range(3)], axis=0)


def test_inside_masks_are_eroded_by_each_convolution_after_block1_and_pooled_by_each_pooling():
    mask = np.random.default_rng(0).uniform(size=(37, 53)).astype(np.float32)
    mask[5:30, 8:40] = 1.0
    seen = masks.layer_masks(mask[None], vgg.VGG16, ("block1_conv2", "block2_conv2", "block3_conv1"), "inside")
    np.testing.assert_array_equal(seen["block1_conv2"][0].numpy(), mask)
    pooled = mask[:36, :52].reshape(18, 2, 26, 2).min(axis=(1, 3))  # an odd last row or column is dropped
    block2 = _erode(_erode(pooled))
    np.testing.assert_array_equal(seen["block2_conv2"][0].numpy(), block2)
    np.testing.assert_array_equal(seen["block3_conv1"][0].numpy(),
                                  _erode(block2[:18, :26].reshape(9, 2, 13, 2).min(axis=(1, 3))))


def test_simple_masks_are_averaged_over_each_pooling_window():
    mask = np.random.default_rng(1).uniform(size=(32, 48)).astype(np.float32)
    seen = masks.layer_masks(mask[None], vgg.VGG16, ("block1_conv1", "block3_conv1"), "simple")
    np.testing.assert_array_equal(seen["block1_conv1"][0].numpy(), mask)
    np.testing.assert_allclose(seen["block3_conv1"][0].numpy(), mask.reshape(8, 4, 12, 4).mean(axis=(1, 3)),
                               rtol=1e-6)


@pytest.mark.parametrize("mode", ["inside", "simple"])
def test_a_layers_mask_has_its_feature_maps_shape_and_the_image_edge_erodes_nothing(extractor, mode):
    features = extractor(gradient_image(50, 70)[None])
    seen = masks.layer_masks(np.ones((2, 50, 70), np.float32), vgg.VGG19, DEFAULT_STYLE_LAYERS, mode)
    for name in DEFAULT_STYLE_LAYERS:
        assert seen[name].shape == (2, *features[name].shape[1:3])
        np.testing.assert_array_equal(seen[name].numpy(), 1.0)


@pytest.mark.parametrize("mode", ["inside", "simple"])
def test_a_guided_gram_is_the_plain_gram_of_the_region_cut_out(extractor, mode):
    # A region aligned to the pooling grid (rows 0-95 of 128) is a block of whole positions at every layer,
    # eroded or not: there the guided Gram is the Gram of those positions alone.
    features = extractor(gradient_image(128, 48)[None])
    seen = masks.layer_masks(_top_rows(128, 48, 96)[None], vgg.VGG19, DEFAULT_STYLE_LAYERS, mode)
    for name in DEFAULT_STYLE_LAYERS:
        layer_mask = seen[name][0].numpy()
        rows = int(layer_mask[:, 0].sum())
        assert set(np.unique(layer_mask)) <= {0.0, 1.0} and rows > 0
        np.testing.assert_array_equal(layer_mask[:rows], 1.0)
        guided = losses.guided_gram_matrices(features[name], seen[name][None])[:, 0]
        np.testing.assert_allclose(guided.numpy(), losses.gram_matrix(features[name][:, :rows]).numpy(), rtol=1e-5)


def test_the_same_texture_gives_the_same_gram_at_10_and_at_90_percent_of_the_image():
    texture = tf.tile(tf.random.stateless_uniform([1, 2, 5, 8], seed=[1, 2]), [1, 10, 4, 1])  # 20x20 positions
    elsewhere = tf.random.stateless_uniform([1, 20, 20, 8], seed=[3, 4]) * 5.0
    small, large = _top_rows(20, 20, 2), _top_rows(20, 20, 18)
    features = tf.where(tf.constant(small[None, ..., None] > 0), texture, elsewhere)
    features_large = tf.where(tf.constant(large[None, ..., None] > 0), texture, elsewhere)
    gram_small = losses.guided_gram_matrices(features, small[None, None])[:, 0]
    gram_large = losses.guided_gram_matrices(features_large, large[None, None])[:, 0]
    np.testing.assert_allclose(gram_small.numpy(), gram_large.numpy(), rtol=1e-5)
    np.testing.assert_allclose(gram_small.numpy(), losses.gram_matrix(texture).numpy(), rtol=1e-5)


def test_guided_gram_gradient_is_tensorflows_of_the_plain_definition():
    features = tf.random.stateless_normal([2, 6, 5, 4], seed=[3, 4])
    region_masks = tf.random.stateless_uniform([2, 3, 6, 5], seed=[7, 8])
    weights = tf.random.stateless_normal([2, 3, 4, 4], seed=[5, 6])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(features)
        ours = losses.guided_gram_matrices(features, region_masks)
        plain = (tf.einsum("brhw,bhwc,bhwd->brcd", region_masks, features, features)
                 / tf.reduce_sum(region_masks, axis=[2, 3])[:, :, None, None])
        ours_loss, plain_loss = tf.reduce_sum(ours * weights), tf.reduce_sum(plain * weights)
    np.testing.assert_allclose(ours.numpy(), plain.numpy(), rtol=1e-5)
    plain_gradient = tape.gradient(plain_loss, features).numpy()
    np.testing.assert_allclose(tape.gradient(ours_loss, features).numpy(), plain_gradient,
                               rtol=0, atol=1e-5 * np.abs(plain_gradient).max())


def test_a_small_region_is_pulled_as_hard_as_a_large_one_and_one_region_everywhere_is_the_plain_loss():
    features = tf.random.stateless_uniform([1, 20, 20, 8], seed=[1, 2])
    target = {"layer": losses.gram_matrix(tf.random.stateless_uniform([1, 9, 9, 8], seed=[5, 6]))}
    weights = {"layer": 1.0}

    def pull(mask):
        features_variable = tf.Variable(features)
        with tf.GradientTape() as tape:
            loss = losses.guided_style_loss({"layer": features_variable}, {"layer": target["layer"][:, None]},
                                            {"layer": tf.constant(mask[None, None])}, weights)
        gradient = tape.gradient(loss, features_variable).numpy()[0]
        return loss.numpy(), np.abs(gradient[mask > 0]).sum(axis=-1).mean()

    everywhere_loss, everywhere_pull = pull(np.ones((20, 20), np.float32))
    np.testing.assert_allclose(everywhere_loss, losses.style_loss({"layer": features}, target, weights).numpy(),
                               rtol=1e-5)
    _, small_pull = pull(_top_rows(20, 20, 2))
    _, large_pull = pull(_top_rows(20, 20, 18))
    assert 0.5 < small_pull / large_pull < 2.0
    assert 0.5 < large_pull / everywhere_pull < 2.0


def test_pixels_in_no_region_get_no_style_gradient(extractor):
    # "inside" keeps only the positions that see nothing outside their region but block 1's two pixels: no
    # style reaches further.
    config = StyleConfig(precision="float32", tv_weight=0.0, content_weight=0.0)
    content = gradient_image(64, 64)
    region = _top_rows(64, 64, 24)
    style_features = extractor(gradient_image(48, 48, seed=5)[None])
    statistics = StyleStatistics({name: losses.gram_matrix(style_features[name])[:, None]
                                  for name in config.style_layers}, {}, {},
                                 {name: tf.ones([1, 1]) for name in config.style_layers})
    targets = batch_targets(extractor, content[None], [statistics], config, content_masks=region[None])
    guided_style = Objective([GuidedStyleTerm(1.0, config.style_layers, config.balanced_style_layer_weights)])
    image = tf.Variable(gradient_image(64, 64, seed=9)[None])
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(guided_style.losses(extractor, image, targets)["total"])
    gradient = tape.gradient(total, image).numpy()[0]
    assert np.abs(gradient[26:]).max() == 0.0
    assert np.abs(gradient[:24]).max() > 0.0


def _coloured_noise(colour, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).uniform(-40, 40, (64, 64, 3))
    return np.clip(np.array(colour, np.float32) + noise, 0, 255).astype(np.float32)


@pytest.mark.slow
def test_two_regions_move_towards_their_own_styles_colours():
    photo = (128.0 + np.random.default_rng(0).uniform(-20, 20, (48, 64, 3))).astype(np.float32)
    red = stripes_image(64, 64) * np.array([1.0, 0.3, 0.2], np.float32)
    blue = stripes_image(64, 64)[::-1] * np.array([0.2, 0.4, 1.0], np.float32)
    top = _top_rows(48, 64, 24)
    result = tf_style.stylize(photo, [red, blue], content_masks=[top, 1 - top],
                              **dict(FAST, steps=100, learning_rate=10.0, content_weight=1.0, tv_weight=0.5))
    red_minus_blue = red.mean(axis=(0, 1)) - blue.mean(axis=(0, 1))

    def towards_red(pixels):
        """How far the mean colour of `pixels` moved from the photo's, in units of red minus blue."""
        moved = pixels.mean(axis=(0, 1)) - photo.mean(axis=(0, 1))
        return np.dot(moved, red_minus_blue) / np.dot(red_minus_blue, red_minus_blue)

    # Measured: 0.36 and -0.51 (the border's rows left out). ImageNet's VGG19 takes a palette slowly on a 48x64
    # synthetic image (its layers are balanced for photos): after 40 steps the top had not moved yet (0.00).
    assert towards_red(result[:20]) > 0.15
    assert towards_red(result[28:]) < -0.15


@pytest.mark.slow
def test_a_batch_with_masks_gives_each_image_its_result_alone():
    contents = [gradient_image(48, 64, seed=seed) for seed in range(2)]
    styles = [_coloured_noise((210, 60, 50), 1), _coloured_noise((40, 70, 210), 2)]
    options = dict(FAST, content_masks=[_top_rows(48, 64, 24) > 0, _top_rows(48, 64, 24) == 0])
    batched = tf_style.stylize_batch([(content, styles) for content in contents], **options)
    for content, result in zip(contents, batched):
        np.testing.assert_allclose(result.image, tf_style.stylize(content, styles, **options), atol=0.5)


@pytest.mark.slow
def test_a_resumed_run_with_masks_ends_as_an_uninterrupted_one_and_other_masks_are_refused(tmp_path):
    content, styles = gradient_image(48, 64), [stripes_image(64, 64), gradient_image(64, 64, seed=3)]
    top = _top_rows(48, 64, 24)
    options = dict(FAST, steps=4, content_masks=[top, 1 - top], checkpoint_dir=str(tmp_path), checkpoint_every=100)

    def interrupt_at_2(report):
        if report.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(tf_style.Interrupted):
        tf_style.stylize(content, styles, callbacks=[interrupt_at_2], **options)
    with pytest.raises(UsageError, match="the region masks differ"):
        tf_style.stylize(content, styles, **dict(options, content_masks=[1 - top, top]))
    resumed = tf_style.stylize(content, styles, **options)
    np.testing.assert_array_equal(resumed, tf_style.stylize(content, styles, **dict(options, checkpoint_dir=None)))


# ---------------------------------------------------------------------------------------------------------
# Bad input: one line, exit 2, before any work.

def _save_mask(path, mask: np.ndarray) -> str:
    Image.fromarray((mask * 255).astype(np.uint8)).save(path)
    return str(path)


def _inputs(tmp_path):
    """A photo, two paintings and two masks (top and bottom half) as files."""
    paths = {}
    for name, image in (("photo", gradient_image(48, 64)), ("a", _coloured_noise((200, 50, 50), 1)),
                        ("b", _coloured_noise((50, 50, 200), 2))):
        paths[name] = str(tmp_path / f"{name}.png")
        Image.fromarray(image.astype(np.uint8)).save(paths[name])
    paths["top"] = _save_mask(tmp_path / "top.png", _top_rows(48, 64, 24))
    paths["bottom"] = _save_mask(tmp_path / "bottom.png", 1 - _top_rows(48, 64, 24))
    paths["black"] = _save_mask(tmp_path / "black.png", np.zeros((480, 640), np.float32))
    paths["strip"] = _save_mask(tmp_path / "strip.png", _top_rows(48, 64, 8))  # one position high at block4
    (tmp_path / "photos").mkdir()
    Image.fromarray(gradient_image(48, 64).astype(np.uint8)).save(tmp_path / "photos" / "photo.png")
    paths["photos"] = str(tmp_path / "photos")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    paths["broken"] = str(tmp_path / "broken.png")
    return paths


BAD_MASKS = {
    "one mask for two styles": (lambda p: [f"--content_masks={p['top']}"],
                                "--content_masks has 1 masks for 2 --style images; give one mask per style"),
    "a mask that does not open": (lambda p: [f"--content_masks={p['top']},{p['broken']}"],
                                  "--content_masks image", "is not a readable image"),
    "a missing mask": (lambda p: [f"--content_masks={p['top']},{p['photo']}.missing"],
                       "--content_masks: no file at"),
    "an empty region": (lambda p: [f"--content_masks={p['top']},{p['black']}"],
                        "black.png leaves no region of the photo at the first scale"),
    "a region too thin for the style layers": (lambda p: [f"--content_masks={p['strip']},{p['bottom']}",
                                                          "--style_layers=block4_conv1"],
                                               "strip.png leaves no region of the photo at the first scale"),
    "style masks without content masks": (lambda p: [f"--style_masks={p['top']},{p['top']}"],
                                          "give the photo's regions with --content_masks"),
    "style masks of the wrong count": (lambda p: [f"--content_masks={p['top']},{p['bottom']}",
                                                  f"--style_masks={p['top']}"], "--style_masks has 1 masks"),
    "the Wasserstein loss": (lambda p: [f"--content_masks={p['top']},{p['bottom']}", "--style_loss=wasserstein"],
                             "use --style_loss=gram"),
    "tiles": (lambda p: [f"--content_masks={p['top']},{p['bottom']}", "--tile_size=64"],
              "--content_masks need an untiled run"),
    "a blend": (lambda p: [f"--content_masks={p['top']},{p['bottom']}", "--style_blend_weights=1,2"],
                "drop one of them"),
    "a batch run": (lambda p: [f"--content={p['photos']}", f"--output_dir={p['photos']}",
                               f"--content_masks={p['top']},{p['bottom']}"],
                    "--content_masks paints one region of one photo with each --style"),
}


@pytest.mark.parametrize("case", sorted(BAD_MASKS))
def test_bad_masks_are_one_line_and_exit_2_before_any_work(tmp_path, case):
    paths = _inputs(tmp_path)
    make_flags, *expected = BAD_MASKS[case]
    flags = [f"--content={paths['photo']}", f"--style={paths['a']},{paths['b']}", "--size=64", "--steps=1",
             *make_flags(paths)]
    if case != "a batch run":
        flags.append(f"--output={tmp_path / 'out.png'}")
    result = run_cli(*flags)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("tf_style: error: ") and all(part in line for part in expected), line
    assert "tf_style:" not in result.stdout  # no compute plan: the network was never built
    assert not (tmp_path / "out.png").exists() and len(list((tmp_path / "photos").iterdir())) == 1


def test_a_size_that_fits_only_in_tiles_is_refused_with_the_size_that_fits(monkeypatch):
    from tf_style import memory
    monkeypatch.setattr(memory, "available_bytes", lambda: 3 << 30)
    top = _top_rows(48, 64, 24)
    with pytest.raises(UsageError, match=r"^--content_masks need an untiled run, and a 2048x1536 result needs "
                                         r"about .* GB .*; use --size=\d+ or less"):
        tf_style.stylize(gradient_image(48, 64), [gradient_image(48, 64)] * 2, content_masks=[top, 1 - top],
                         **dict(FAST, size=2048, precision="float32"))


def test_mask_arrays_of_0_to_1_and_of_0_to_255_are_the_same_mask():
    from tf_style import images
    top = _top_rows(20, 30, 10)
    for same in (top > 0, top, (255 * top).astype(np.uint8), Image.fromarray((255 * top).astype(np.uint8))):
        np.testing.assert_array_equal(images.load_mask(same), top)


def test_a_mask_array_must_be_an_image():
    with pytest.raises(UsageError, match="--content_masks image: expected an array of shape"):
        tf_style.stylize(gradient_image(48, 64), [gradient_image(48, 64)] * 2,
                         content_masks=[np.zeros((4, 4, 7)), np.zeros((4, 4))], **FAST)
