"""Llama-family decoder (Flax NNX), heads, loaders (GGUF, safetensors, Orbax) and tokenizer."""

from alignment.models.config import PRESETS, DecoderConfig, get_config
from alignment.models.decoder import Decoder, KVCache

__all__ = ["PRESETS", "Decoder", "DecoderConfig", "KVCache", "get_config"]
