"""StyleConfig validation: each bad value is a UsageError that names the flag."""

import pytest

from tf_style.config import STYLE_SCALE_OF_WEIGHTS, StyleConfig
from tf_style.errors import UsageError
from tf_style.network import vgg


@pytest.mark.parametrize("changes, flag", [
    ({"size": 0}, "--size"),
    ({"size": -5}, "--size"),
    ({"steps": 0}, "--steps"),
    ({"learning_rate": 0.0}, "--learning_rate"),
    ({"learning_rate": float("nan")}, "--learning_rate"),
    ({"style_weight": -1.0}, "--style_weight"),
    ({"content_weight": float("inf")}, "--content_weight"),
    ({"tv_weight": -0.1}, "--tv_weight"),
    ({"content_layers": ("block9_conv1",)}, "--content_layers"),
    ({"style_layers": ()}, "--style_layers"),
    ({"style_layer_weights": (1.0, 2.0)}, "--style_layer_weights"),
    ({"style_layer_weights": (0.0,) * 5}, "--style_layer_weights"),
    ({"weights": "no/such/file.h5"}, "--weights"),
    ({"pooling": "min"}, "--pooling"),
    ({"init": "no/such/image.png"}, "--init"),
    ({"seed": -1}, "--seed"),  # numpy's generators take none: a traceback before
    ({"seed": 2**63}, "--seed"),  # over TensorFlow's int64
    ({"xla": "maybe"}, "--xla"),
    ({"precision": "int8"}, "--precision"),
    ({"save_every": -1}, "--save_every"),
    ({"warm_start_optimizer": "yes"}, "--warm_start_optimizer"),
    ({"scale_detail": -0.5}, "--scale_detail"),
])
def test_bad_values_name_their_flag(changes, flag):
    with pytest.raises(UsageError, match=flag):
        StyleConfig(**changes)


def test_layers_accept_a_comma_separated_string():
    config = StyleConfig(style_layers="block1_conv1, block3_conv1")
    assert config.style_layers == ("block1_conv1", "block3_conv1")


def test_style_layer_weights_are_relative_and_sum_to_the_networks_scale():
    config = StyleConfig(style_layer_weights=(256, 64, 16, 4, 0), weights="hed")
    assert config.balanced_style_layer_weights == pytest.approx((256 / 340, 64 / 340, 16 / 340, 4 / 340, 0))
    assert StyleConfig(weights="hed").balanced_style_layer_weights == pytest.approx((0.2,) * 5)
    assert sum(StyleConfig().balanced_style_layer_weights) == pytest.approx(STYLE_SCALE_OF_WEIGHTS["imagenet"])


def test_equal_weights_give_each_layer_an_equal_pull_on_imagenets_vgg19():
    """ImageNet's VGG19 pulls far harder through block4_conv1 than block1_conv1 (`vgg.STYLE_PULLS`): each layer's
    weight is divided by its pull, so that weight times pull is the same for every layer."""
    config = StyleConfig()
    pulls = [vgg.STYLE_PULLS["imagenet"][layer] for layer in config.style_layers]
    effective = [weight * pull for weight, pull in zip(config.balanced_style_layer_weights, pulls)]
    assert effective == pytest.approx([effective[0]] * 5)
    doubled = StyleConfig(style_layer_weights=(2, 1, 1, 1, 1)).balanced_style_layer_weights
    assert doubled[0] * pulls[0] == pytest.approx(2 * doubled[1] * pulls[1])


def test_replace_validates_again():
    with pytest.raises(UsageError, match="--steps"):
        StyleConfig().replace(steps=0)


@pytest.mark.parametrize("options, message", [
    ({"checkpoint_dir": "ckpt"}, "--checkpoint_dir resumes a run of one content and one style; a batch run resumes"),
    ({"style_blend_weights": (1, 2)}, "--style_blend_weights blends the styles of one run; a batch run stylizes"),
])
def test_batch_runs_refuse_the_options_of_single_runs(options, message):
    StyleConfig().require_one_result_options_unset("a batch run")
    with pytest.raises(UsageError, match=message):
        StyleConfig(**options).require_one_result_options_unset("a batch run")


def test_what_changes_the_result_is_recorded_with_each_option():
    changing = set(StyleConfig.options_that_change_the_result())
    assert {"content_weight", "style_layers", "padding", "pooling", "size", "steps", "init"} <= changing
    assert not changing & {"save_every", "progress_every", "checkpoint_dir", "checkpoint_every", "batch_size",
                           "precision", "xla", "seed", "original_colors"}
