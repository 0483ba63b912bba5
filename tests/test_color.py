"""The colour transforms against exact expectations: YUV inverses, kept chroma, matched mean and covariance."""

import numpy as np
import pytest

from conftest import gradient_image, stripes_image
from tf_style import color


def pixel_statistics(image):
    """Mean and covariance of the pixels, in float64: [H, W, 3] -> ([3], [3, 3])."""
    pixels = np.reshape(image, (-1, 3)).astype(np.float64)
    return pixels.mean(axis=0), np.cov(pixels, rowvar=False, bias=True)


def correlated_image(height, width, mean, mixing, seed):
    """Gaussian pixels with covariance mixing @ mixing.T, far enough inside [0, 255] that nothing clips."""
    white = np.random.default_rng(seed).standard_normal((height * width, 3))
    image = (white @ np.asarray(mixing, np.float64).T + mean).reshape(height, width, 3)
    assert 0 < image.min() and image.max() < 255
    return image.astype(np.float32)


def test_yuv_round_trip():
    image = gradient_image(64, 64)
    np.testing.assert_allclose(color.yuv_to_rgb(color.rgb_to_yuv(image)), image, atol=1e-4)
    yuv = color.rgb_to_yuv(image)
    np.testing.assert_allclose(color.rgb_to_yuv(color.yuv_to_rgb(yuv)), yuv, atol=1e-4)


def test_yuv_by_hand():
    # BT.601: white is Y = 255 with no chroma; pure red has V = 0.615 * 255 and pure blue U = 0.436 * 255.
    pixels = np.array([[[255, 255, 255], [255, 0, 0], [0, 0, 255], [0, 0, 0]]], np.float32)
    yuv = color.rgb_to_yuv(pixels)[0]
    np.testing.assert_allclose(yuv[0], [255, 0, 0], atol=1e-3)
    np.testing.assert_allclose(yuv[1, [0, 2]], [0.299 * 255, 0.615 * 255], atol=1e-3)
    np.testing.assert_allclose(yuv[2, [0, 1]], [0.114 * 255, 0.436 * 255], atol=1e-3)
    np.testing.assert_allclose(yuv[3], [0, 0, 0], atol=1e-3)


def test_transfer_luminance_keeps_content_chroma_and_stylized_luminance():
    # Mid-grey images with moderate colour, so Y from one and U, V from the other stay inside the RGB cube.
    content = 100 + 0.25 * gradient_image(48, 64)
    stylized = 80 + 0.4 * stripes_image(48, 64)
    result = color.transfer_luminance(stylized, content)
    assert result.shape == content.shape and result.dtype == np.float32
    assert 0 < result.min() and result.max() < 255  # nothing clipped, so the expectations below are exact
    result_yuv = color.rgb_to_yuv(result)
    np.testing.assert_allclose(result_yuv[..., 0], color.rgb_to_yuv(stylized)[..., 0], atol=1e-3)
    np.testing.assert_allclose(result_yuv[..., 1:], color.rgb_to_yuv(content)[..., 1:], atol=1e-3)


def test_transfer_luminance_clips_to_the_rgb_cube():
    content = np.zeros((4, 4, 3), np.float32)
    content[..., 2] = 255  # saturated blue: a large U
    stylized = np.full((4, 4, 3), 250, np.float32)  # near white: a large Y
    result = color.transfer_luminance(stylized, content)
    assert result.min() >= 0 and result.max() <= 255


def test_transfer_luminance_can_match_the_content_brightness_and_contrast():
    content = 100 + 0.25 * gradient_image(48, 64)
    stylized = 30 + 0.2 * stripes_image(48, 64)  # a dark, low-contrast painting
    result = color.transfer_luminance(stylized, content, match_luminance=True)
    assert 0 < result.min() and result.max() < 255
    result_yuv = color.rgb_to_yuv(result)
    content_luminance = color.rgb_to_yuv(content)[..., 0]
    assert result_yuv[..., 0].mean() == pytest.approx(content_luminance.mean(), abs=1e-3)
    assert result_yuv[..., 0].std() == pytest.approx(content_luminance.std(), rel=1e-3)
    np.testing.assert_allclose(result_yuv[..., 1:], color.rgb_to_yuv(content)[..., 1:], atol=1e-3)
    # Matching is a positive affine map of Y: the stylized pattern survives, only shifted and stretched.
    stylized_luminance = color.rgb_to_yuv(stylized)[..., 0]
    assert np.corrcoef(result_yuv[..., 0].ravel(), stylized_luminance.ravel())[0, 1] > 0.9999


def test_transfer_luminance_rejects_different_shapes():
    with pytest.raises(ValueError, match="same shape"):
        color.transfer_luminance(np.zeros((4, 4, 3), np.float32), np.zeros((4, 5, 3), np.float32))


def test_match_color_statistics_matches_mean_and_covariance():
    image = correlated_image(64, 64, [120, 110, 130], [[20, 5, 0], [5, 15, 3], [2, 0, 10]], seed=1)
    reference = correlated_image(32, 48, [140, 100, 90], [[12, 0, 0], [8, 10, 0], [-4, 6, 14]], seed=2)
    result = color.match_color_statistics(image, reference)
    assert result.shape == image.shape and result.dtype == np.float32
    assert 0 < result.min() and result.max() < 255  # nothing clipped
    result_mean, result_covariance = pixel_statistics(result)
    reference_mean, reference_covariance = pixel_statistics(reference)
    np.testing.assert_allclose(result_mean, reference_mean, atol=1e-3)
    tolerance = 2.5e-4 * np.abs(reference_covariance).max()  # epsilon on the diagonal costs ~1e-4 of a variance
    np.testing.assert_allclose(result_covariance, reference_covariance, atol=tolerance)


def test_match_color_statistics_uses_the_symmetric_square_root():
    # For an image of identity-times-k covariance the map is A = cov_reference^(1/2) / k: symmetric, whereas a
    # Cholesky factor would be lower triangular.
    white = np.random.default_rng(3).standard_normal((64 * 64, 3))
    white -= white.mean(axis=0)
    white = white @ np.linalg.inv(np.linalg.cholesky(np.cov(white, rowvar=False, bias=True))).T  # exactly I
    image = (128 + 20 * white).reshape(64, 64, 3).astype(np.float32)
    reference = correlated_image(32, 32, [140, 100, 90], [[12, 0, 0], [8, 10, 0], [-4, 6, 14]], seed=4)
    result = color.match_color_statistics(image, reference)
    centred_image = np.reshape(image, (-1, 3)) - np.reshape(image, (-1, 3)).mean(axis=0)
    centred_result = np.reshape(result, (-1, 3)) - np.reshape(result, (-1, 3)).mean(axis=0)
    transform = np.linalg.lstsq(centred_image, centred_result, rcond=None)[0].T
    np.testing.assert_allclose(transform, transform.T, atol=1e-4)
    assert np.all(np.linalg.eigvalsh((transform + transform.T) / 2) > 0)


def test_match_color_statistics_of_an_image_to_itself_is_the_identity():
    image = gradient_image(48, 64)
    np.testing.assert_allclose(color.match_color_statistics(image, image), image, atol=1e-3)


def test_match_color_statistics_of_a_constant_image_is_the_reference_mean():
    grey = np.full((16, 16, 3), 128, np.float32)
    reference = stripes_image(32, 32)
    result = color.match_color_statistics(grey, reference)
    assert np.all(np.isfinite(result))
    np.testing.assert_allclose(result, np.broadcast_to(pixel_statistics(reference)[0], result.shape), atol=1e-3)


def test_match_color_statistics_of_a_greyscale_image_is_finite_and_keeps_its_tones():
    # R = G = B: a rank-one covariance, with nothing to scale across the grey axis. The ramp must come out as
    # a ramp (here of rising luminance), not as NaN or as noise blown up from rounding.
    tones = np.linspace(40, 220, 256, dtype=np.float32).reshape(16, 16, 1)
    greyscale = np.repeat(tones, 3, axis=-1)
    result = color.match_color_statistics(greyscale, stripes_image(32, 32))
    assert np.all(np.isfinite(result))
    luminance = color.rgb_to_yuv(result)[..., 0].ravel()
    assert np.all(np.diff(luminance) >= 0)


def test_colored_noise_has_the_reference_statistics():
    reference = correlated_image(32, 32, [140, 100, 90], [[12, 0, 0], [8, 10, 0], [-4, 6, 14]], seed=5)
    noise = color.colored_noise((256, 256, 3), reference, np.random.default_rng(0))
    assert noise.shape == (256, 256, 3) and noise.dtype == np.float32
    assert noise.min() >= 0 and noise.max() <= 255
    noise_mean, noise_covariance = pixel_statistics(noise)
    reference_mean, reference_covariance = pixel_statistics(reference)
    # 65 536 samples: the sample mean is within ~0.1 grey level, the covariance within ~1% of the variances.
    np.testing.assert_allclose(noise_mean, reference_mean, atol=0.5)
    np.testing.assert_allclose(noise_covariance, reference_covariance, atol=0.03 * np.abs(reference_covariance).max())


def test_colored_noise_is_reproducible_from_the_seed():
    reference = stripes_image(32, 32)
    first = color.colored_noise((16, 24, 3), reference, np.random.default_rng(7))
    again = color.colored_noise((16, 24, 3), reference, np.random.default_rng(7))
    other = color.colored_noise((16, 24, 3), reference, np.random.default_rng(8))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("shape", [(16, 16), (16, 16, 4), (0, 16, 3)])
def test_colored_noise_rejects_a_bad_shape(shape):
    with pytest.raises(ValueError, match="Received: shape="):
        color.colored_noise(shape, stripes_image(8, 8), np.random.default_rng(0))
