"""The PyTorch yardstick of the benchmark: one Gatys/Adam step on the same VGG stack as tf_style's default (VGG19
to block5_conv1), as a plain PyTorch loop writes it: convolutions in channels_last, style relu1_1..relu5_1, content
relu4_2, Gram matrices over the positions, mean squared errors, Adam, the image clamped to [0, 1]; float32, or
bfloat16 under autocast. Random weights: the speed does not depend on them.

PyTorch is optional (`pip install -e '.[bench]'`, the CPU wheel); `available()` says whether it is here.
"""

import importlib.util
import time

from tf_style.config import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS, StyleConfig
from tf_style.network import vgg

_NETWORK = StyleConfig().network
_IN_USE = _NETWORK.layers_through_deepest(DEFAULT_CONTENT_LAYERS + DEFAULT_STYLE_LAYERS)
# The network's convolutions through the deepest layer in use: channels, "M" for a 2x2 max pool.
LAYERS = tuple(item for name, _, channels in _IN_USE
               for item in (("M", channels) if vgg.pooled_before(name) else (channels,)))
_INDEX = {name: index for index, (name, _, _) in enumerate(_IN_USE)}
STYLE_CONVOLUTIONS = tuple(_INDEX[name] for name in DEFAULT_STYLE_LAYERS)  # counting convolutions from 0
CONTENT_CONVOLUTIONS = tuple(_INDEX[name] for name in DEFAULT_CONTENT_LAYERS)


def available() -> bool:
    return importlib.util.find_spec("torch") is not None


class PyTorchStep:
    """One PyTorch step at `size` (4:3), float32 or bfloat16 autocast; calling it runs and waits for a step."""

    def __init__(self, size: int, bfloat16: bool = False):
        import torch

        self._torch = torch
        self.bfloat16 = bfloat16
        torch.manual_seed(0)
        modules, channels = [], 3
        for layer in LAYERS:
            if layer == "M":
                modules.append(torch.nn.MaxPool2d(2, 2))
            else:
                modules += [torch.nn.Conv2d(channels, layer, 3, padding=1), torch.nn.ReLU()]
                channels = layer
        self.network = torch.nn.Sequential(*modules).eval().requires_grad_(False)
        self.network = self.network.to(memory_format=torch.channels_last)
        self.height, self.width = round(size * 3 / 4), size
        content, style = (torch.rand(1, 3, self.height, self.width).to(memory_format=torch.channels_last)
                          for _ in range(2))
        with torch.no_grad(), self._autocast():
            self.style_grams = {index: _gram(features) for index, features in self._features(style).items()
                                if index in STYLE_CONVOLUTIONS}
            self.content_features = {index: features.float() for index, features in self._features(content).items()
                                     if index in CONTENT_CONVOLUTIONS}
        self.image = content.clone().requires_grad_(True)
        self.optimizer = torch.optim.Adam([self.image], lr=0.02)

    def _autocast(self):
        return self._torch.autocast("cpu", dtype=self._torch.bfloat16, enabled=self.bfloat16)

    def _features(self, images) -> dict:
        """{convolution index: its ReLU's output} for the style and content convolutions."""
        outputs, index = {}, -1
        for module in self.network:
            images = module(images)
            if isinstance(module, self._torch.nn.Conv2d):
                index += 1
            elif isinstance(module, self._torch.nn.ReLU) and index in STYLE_CONVOLUTIONS + CONTENT_CONVOLUTIONS:
                outputs[index] = images
        return outputs

    def __call__(self) -> float:
        self.optimizer.zero_grad()
        with self._autocast():
            features = self._features(self.image)
        loss = sum(((_gram(features[index]) - gram) ** 2).mean() for index, gram in self.style_grams.items())
        loss = loss + sum(((features[index].float() - target) ** 2).mean()
                          for index, target in self.content_features.items())
        loss.backward()
        self.optimizer.step()
        with self._torch.no_grad():
            self.image.clamp_(0, 1)
        return float(loss.detach())


def _gram(features):
    batch, channels, height, width = features.shape
    flat = features.float().reshape(batch, channels, height * width)
    return flat @ flat.transpose(1, 2) / (height * width)


def conv_gflops(shape: tuple, bfloat16: bool, num_steps: int = 10, warmup_steps: int = 3) -> float:
    """GFLOP/s of PyTorch's 3x3 convolution on a [B, H, W, C] -> C shape, channels_last: a peak probe."""
    import torch

    batch, height, width, channels = shape
    dtype = torch.bfloat16 if bfloat16 else torch.float32
    activations = torch.randn(batch, channels, height, width, dtype=dtype).to(memory_format=torch.channels_last)
    convolution = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(dtype)
    convolution = convolution.to(memory_format=torch.channels_last).requires_grad_(False)
    durations = []
    with torch.no_grad():
        for step in range(warmup_steps + num_steps):
            start = time.perf_counter()
            float(convolution(activations)[0, 0, 0, 0])
            if step >= warmup_steps:
                durations.append(time.perf_counter() - start)
    durations.sort()
    return 2 * batch * height * width * 9 * channels * channels / durations[len(durations) // 2] / 1e9
