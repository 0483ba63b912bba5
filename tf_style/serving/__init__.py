"""Serving: the feature extractor and the whole stylizer as SavedModels that TF Serving serves."""
