"""Colour transforms for the "original colours" and colour-matched starts of Gatys et al. (2017).

Pure numpy functions on float32 RGB images [H, W, 3] in [0, 255]; no TensorFlow, no I/O, no state.
The sums are done in float64 (a float32 mean over millions of pixels loses whole grey levels) and the results
are returned as float32, clipped to [0, 255] where they are images to be shown or optimized.

References: L. A. Gatys, A. S. Ecker, M. Bethge, A. Hertzmann, E. Shechtman, "Controlling Perceptual Factors
in Neural Style Transfer", CVPR 2017, its colour control: luminance-only transfer and colour histogram matching.
"""

import numpy as np

# BT.601 luma weights, and the scales that bound U to +-0.436 and V to +-0.615 of the luma range.
_LUMA_WEIGHTS = (0.299, 0.587, 0.114)
_U_SCALE = 0.436 / (1.0 - _LUMA_WEIGHTS[2])
_V_SCALE = 0.615 / (1.0 - _LUMA_WEIGHTS[0])
# Rows give (Y, U, V) from (R, G, B): Y = luma, U = scaled (B - Y), V = scaled (R - Y).
_RGB_TO_YUV = np.array([
    _LUMA_WEIGHTS,
    [-_U_SCALE * _LUMA_WEIGHTS[0], -_U_SCALE * _LUMA_WEIGHTS[1], _U_SCALE * (1.0 - _LUMA_WEIGHTS[2])],
    [_V_SCALE * (1.0 - _LUMA_WEIGHTS[0]), -_V_SCALE * _LUMA_WEIGHTS[1], -_V_SCALE * _LUMA_WEIGHTS[2]],
])
# Inverted here rather than copied as rounded constants (1.13983, ...), so that the round trip is exact.
_YUV_TO_RGB = np.linalg.inv(_RGB_TO_YUV)

# Added to the diagonal of every covariance (in grey levels squared, i.e. a standard deviation of 0.1 grey
# level, below 8-bit quantization) before taking its square root or inverse square root: a constant or
# greyscale image has a singular covariance, and its zero-variance directions must map to zero, not to NaN.
_COVARIANCE_EPSILON = 1e-2


def rgb_to_yuv(image: np.ndarray) -> np.ndarray:
    """BT.601 YUV, Y in [0, 255] and U, V centred on 0: RGB [H, W, 3] in [0, 255] -> YUV [H, W, 3]."""
    return (np.asarray(image, np.float64) @ _RGB_TO_YUV.T).astype(np.float32)


def yuv_to_rgb(image: np.ndarray) -> np.ndarray:
    """The exact inverse of `rgb_to_yuv`, not clipped: YUV [H, W, 3] -> RGB [H, W, 3]."""
    return (np.asarray(image, np.float64) @ _YUV_TO_RGB.T).astype(np.float32)


def transfer_luminance(stylized: np.ndarray, content: np.ndarray, match_luminance: bool = False) -> np.ndarray:
    """The stylized image's luminance in the content's colours: 2 x RGB [H, W, 3] -> RGB [H, W, 3] in [0, 255].

    The "original colours" of Gatys et al. (2017), applied after the transfer: Y comes from `stylized`, U and V
    from `content`, so the brush strokes and shading are the painting's and the hues are the photo's.

    Args:
        stylized: the result of the style transfer.
        content: the photo whose colours to keep, the same shape as `stylized`.
        match_luminance: first shift and scale the stylized luminance to the content's mean and standard
            deviation, so the result keeps the photo's overall brightness and contrast when the painting is
            much darker or lighter than the photo (the paper's luminance matching, which it applies to the
            style before the transfer). Off by default: the stylized luminance already follows the content
            through the content loss, the painting's tonality is part of the style the user chose, and off is
            what "original colours" does in other tools (`-original_colors` of jcjohnson/neural-style).

    Returns:
        float32 RGB [H, W, 3], clipped to [0, 255] (a dark Y with a strong chroma can leave the RGB cube).
    """
    _check_rgb(stylized, "stylized")
    _check_rgb(content, "content")
    if np.shape(stylized) != np.shape(content):
        raise ValueError(f"stylized and content must have the same shape; resize one to the other. Received: "
                         f"stylized.shape={np.shape(stylized)}, content.shape={np.shape(content)}")
    stylized_yuv = rgb_to_yuv(stylized)
    content_yuv = rgb_to_yuv(content)
    luminance = stylized_yuv[..., :1]
    if match_luminance:
        luminance = _match_statistics(luminance.reshape(-1, 1), content_yuv[..., :1].reshape(-1, 1))
        luminance = luminance.reshape(stylized_yuv.shape[:-1] + (1,))
    combined = np.concatenate([luminance, content_yuv[..., 1:]], axis=-1)
    return np.clip(yuv_to_rgb(combined), 0.0, 255.0)


def match_color_statistics(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`image` recoloured to `reference`'s pixel mean and covariance: RGB [H, W, 3], [h, w, 3] -> [H, W, 3].

    The colour histogram matching of Gatys et al. (2017): every pixel goes through the same affine map
    x -> A (x - mean_image) + mean_reference, with A = cov_reference^(1/2) cov_image^(-1/2) from the symmetric
    (eigen-decomposition) square roots. Cholesky factors match the covariance too, but they are triangular, so
    the result depends on the channel order and hues shift; the symmetric roots treat R, G and B alike, and
    for an image of isotropic covariance A is a pure stretch along the reference's principal colour axes.
    The images may differ in size.

    Returns:
        float32 RGB [H, W, 3], clipped to [0, 255]. A constant image becomes the reference's mean colour.
    """
    _check_rgb(image, "image")
    _check_rgb(reference, "reference")
    recoloured = _match_statistics(np.reshape(image, (-1, 3)), np.reshape(reference, (-1, 3)))
    return np.clip(recoloured.reshape(np.shape(image)), 0.0, 255.0)


def colored_noise(shape, reference: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with `reference`'s pixel mean and covariance: (H, W, 3), RGB [h, w, 3] -> [H, W, 3].

    A start for the optimization that already has the style's palette, drawn from `rng` (reproducible from its
    seed). Returns float32, clipped to [0, 255].
    """
    shape = tuple(shape)
    if len(shape) != 3 or shape[-1] != 3 or min(shape) <= 0:
        raise ValueError(f"shape must be (height, width, 3) with positive sizes. Received: shape={shape}")
    _check_rgb(reference, "reference")
    mean, covariance = _pixel_statistics(np.reshape(reference, (-1, 3)))
    white = rng.standard_normal((shape[0] * shape[1], 3))
    noise = white @ _covariance_power(covariance, 0.5) + mean
    return np.clip(noise.reshape(shape), 0.0, 255.0).astype(np.float32)


def _check_rgb(image: np.ndarray, name: str) -> None:
    """Raises ValueError unless `image` is [H, W, 3]."""
    if np.ndim(image) != 3 or np.shape(image)[-1] != 3:
        raise ValueError(f"{name} must be an RGB image [height, width, 3]. Received: {name}.shape={np.shape(image)}")


def _pixel_statistics(pixels: np.ndarray):
    """Mean and covariance over pixels, in float64: [N, C] -> ([C], [C, C])."""
    pixels = np.asarray(pixels, np.float64)
    mean = pixels.mean(axis=0)
    centred = pixels - mean
    return mean, centred.T @ centred / len(pixels)


def _covariance_power(covariance: np.ndarray, power: float) -> np.ndarray:
    """(covariance + epsilon I) ** power through its eigen-decomposition, a symmetric matrix: [C, C] -> [C, C]."""
    eigenvalues, eigenvectors = np.linalg.eigh(covariance + _COVARIANCE_EPSILON * np.eye(len(covariance)))
    # Rounding can leave an eigenvalue of a singular covariance a hair below epsilon, never below zero.
    eigenvalues = np.maximum(eigenvalues, _COVARIANCE_EPSILON)
    return (eigenvectors * eigenvalues ** power) @ eigenvectors.T


def _match_statistics(pixels: np.ndarray, reference_pixels: np.ndarray) -> np.ndarray:
    """Affine map of `pixels` to `reference_pixels`' mean and covariance: [N, C], [M, C] -> float32 [N, C]."""
    mean, covariance = _pixel_statistics(pixels)
    reference_mean, reference_covariance = _pixel_statistics(reference_pixels)
    # Epsilon enters both roots, so an image matched to itself comes back unchanged.
    transform = _covariance_power(reference_covariance, 0.5) @ _covariance_power(covariance, -0.5)
    return ((np.asarray(pixels, np.float64) - mean) @ transform.T + reference_mean).astype(np.float32)
