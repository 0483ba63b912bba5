"""tf_style.objective.faces and the faces' content term: faces found where there are some and nowhere else, the
mask, the term's loss and its tiled form, and a run that holds a small face."""

import numpy as np
import pytest
import tensorflow as tf

import tf_style
from conftest import gradient_image, stripes_image
from tf_style import api, images
from tf_style.config import StyleConfig
from tf_style.objective import faces, losses
from tf_style.objective.targets import batch_targets, face_targets, style_statistics
from tf_style.objective.terms import FaceTerm, objective_for
from tf_style.tiling import tiles
from tf_style.tiling.tiled_objective import TiledObjective

ASTRONAUT = f"{api.SAMPLES_DIR}/photos/astronaut.jpg"


def test_the_astronauts_face_is_found_and_no_face_in_a_town_or_a_pattern():
    [(x, y, width, height)] = faces.find_faces(images.load_image(ASTRONAUT))
    # Her face, in the upper middle of the 512 x 512 photo, a fifth of it across.
    assert 150 < x + width / 2 < 300 and 80 < y + height / 2 < 160 and 70 < width < 130
    assert faces.find_faces(stripes_image(256, 256)) == []


# The face cascade alone finds a face in a row of Tübingen's windows at 640 and 800 px, and in The Starry Night's
# strokes at 384 to 640 px: the eye and skin checks drop them.
@pytest.mark.parametrize("image, long_side", [(api.SAMPLE_CONTENT, 640), (api.SAMPLE_CONTENT, 800),
                                              (api.SAMPLE_CONTENT, 768), (api.SAMPLE_STYLE, 512)])
def test_no_face_is_found_in_windows_or_brush_strokes(image, long_side):
    assert faces.find_faces(images.resize_long_side(images.load_image(image), long_side)) == []


def test_a_black_and_white_face_is_found_without_the_skin_check():
    grey = images.load_image(ASTRONAUT).mean(axis=-1, keepdims=True).repeat(3, axis=-1)
    assert len(faces.find_faces(grey)) == 1


def test_a_large_photo_is_searched_smaller_and_its_boxes_are_in_its_own_pixels():
    photo = images.load_image(ASTRONAUT)
    [small] = faces.find_faces(photo)  # 512 x 512: searched as it is
    [large] = faces.find_faces(images.resize(photo, 1536, 1536))
    # The cascade's windows grow in steps of 10%, so the two searches' boxes differ by up to that.
    np.testing.assert_allclose(np.array(large) / 3, small, atol=0.1 * small[2])


def test_the_mask_is_one_on_the_face_and_fades_to_zero_around_it():
    mask = faces.face_mask(100, 120, [(40, 20, 30, 40)]).numpy()
    assert mask.shape == (100, 120) and mask.dtype == np.float32
    assert mask[40, 55] == 1.0 and mask[0, 0] == 0.0 and mask[95, 5] == 0.0
    column = mask[:, 55]
    assert 0 < column[5] < 1 or 0 < column[8] < 1  # a fade, not a step, above the forehead
    assert faces.face_mask(10, 10, []).numpy().max() == 0.0


def test_the_masked_content_loss_is_the_content_loss_under_a_mask_of_ones_and_ignores_the_rest():
    rng = np.random.default_rng(0)
    value, target = (tf.constant(rng.normal(size=(2, 6, 8, 4)), tf.float32) for _ in range(2))
    ones = tf.ones([2, 6, 8, 1])
    np.testing.assert_allclose(losses.masked_content_loss({"a": value}, {"a": target}, {"a": ones}),
                               losses.content_loss({"a": value}, {"a": target}), rtol=1e-6)
    left = np.zeros((2, 6, 8, 1), np.float32)
    left[:, :, :4] = 1
    changed_right = tf.concat([value[:, :, :4], value[:, :, 4:] + 10], axis=2)
    np.testing.assert_allclose(losses.masked_content_loss({"a": changed_right}, {"a": target}, {"a": left}),
                               losses.masked_content_loss({"a": value}, {"a": target}, {"a": left}), rtol=1e-6)


@pytest.mark.slow
def test_the_tiled_faces_term_is_the_untiled_one(extractor):
    config = StyleConfig()
    height, width = 96, 128
    content = gradient_image(height, width)
    statistics = style_statistics(extractor, [stripes_image(160, 200)], config)
    mask = faces.face_mask(height, width, [(40, 20, 40, 40)])[None]
    grid = tiles.tile_grid(height, width, 64, tiles.margin_of(config))
    targets = batch_targets(extractor, content[None], [statistics], config)
    tiled_targets = batch_targets(extractor, content[None], [statistics], config, grid)
    targets["faces"] = face_targets(targets["content"], mask)
    tiled_targets["faces"] = face_targets(tiled_targets["content"], mask)
    objective = objective_for(config).with_terms(FaceTerm(0.5, config.content_layers))
    image = tf.Variable(np.clip(content + np.random.default_rng(1).normal(0, 20, content.shape), 0, 255)[None]
                        .astype(np.float32))
    with tf.GradientTape() as tape:
        terms = objective.losses(extractor, image, targets)
        total = tf.reduce_sum(terms["total"])
    gradient = tape.gradient(total, image)
    tiled_terms, tiled_gradient = TiledObjective(extractor, objective, grid).losses_and_gradient(image, tiled_targets)
    assert float(terms["faces"][0]) > 0
    np.testing.assert_allclose(tiled_terms["faces"], terms["faces"], rtol=1e-4)
    assert float(tf.norm(tiled_gradient - gradient) / tf.norm(gradient)) < 1e-4


@pytest.mark.slow
def test_a_photo_with_a_face_gets_the_faces_term_and_one_without_does_not():
    reported = []
    tf_style.stylize(ASTRONAUT, stripes_image(64, 64), size=96, steps=2, initial_size=0, log=None,
                     callbacks=[reported.append])
    assert "faces" in reported[-1].losses and reported[-1].losses["faces"] > 0
    reported.clear()
    tf_style.stylize(ASTRONAUT, stripes_image(64, 64), size=96, steps=2, initial_size=0, face_weight=0, log=None,
                     callbacks=[reported.append])
    assert "faces" not in reported[-1].losses
    reported.clear()
    tf_style.stylize(gradient_image(48, 64), stripes_image(64, 64), size=64, steps=2, initial_size=0, log=None,
                     callbacks=[reported.append])
    assert "faces" not in reported[-1].losses


@pytest.mark.slow
def test_the_faces_term_keeps_more_of_the_face_than_none(extractor):
    # At 128 px her face is under the cascade's 24 px window: it is found on the photo as given, and held.
    [box] = faces.find_faces(images.load_image(ASTRONAUT))
    photo = images.resize_long_side(images.load_image(ASTRONAUT), 128)
    mask = faces.face_mask(128, 128, [tuple(value / 4 for value in box)])[None]
    painting = stripes_image(128, 128)
    options = dict(size=128, steps=40, initial_size=0, seed=0, log=None)
    with_term = tf_style.stylize(ASTRONAUT, painting, **options)
    without = tf_style.stylize(ASTRONAUT, painting, face_weight=0, **options)
    layers = StyleConfig().content_layers
    photo_features = {name: extractor(photo[None])[name] for name in layers}
    face = face_targets(photo_features, mask)["masks"]
    everywhere = {name: tf.ones_like(each) for name, each in face.items()}

    def drift(result, where):
        return float(losses.masked_content_loss(extractor(result[None]), photo_features, where)[0])

    assert drift(with_term, face) < 0.8 * drift(without, face)
    assert drift(with_term, everywhere) > 0.9 * drift(without, everywhere)  # the rest is painted as before


def test_a_negative_face_weight_is_refused():
    with pytest.raises(tf_style.UsageError, match="--face_weight must be a non-negative number"):
        StyleConfig(face_weight=-1)
