"""The network: VGG's facts, its weights, the feature extractor, the convolution kernels, the device and precision."""
