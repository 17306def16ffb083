"""A JAX-native framework for aligning language models with (several) reward models."""

__version__ = "0.1.0"
