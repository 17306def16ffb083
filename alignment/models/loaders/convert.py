"""Hugging Face Llama tensor names and layouts -> the parameters of ``alignment.models.Decoder``.

Both real-weight sources end here: safetensors checkpoints use these names directly, and the
GGUF reader renames llama.cpp tensors to them. Torch linear weights are ``[out, in]``; the
decoder stores ``[in, out]`` with the head axes split out:

  q_proj [H*hd, D] -> q [D, H, hd]      k_proj, v_proj [KV*hd, D] -> [D, KV, hd]
  o_proj [D, H*hd] -> o [H, hd, D]      gate_proj, up_proj [F, D] -> [D, F];  down_proj [D, F] -> [F, D]
  lm_head [V, D]   -> lm_head [D, V]    embeddings [V, D] and norm scales unchanged.

``Pretrained`` (what every loader returns) and ``need`` (a required metadata field, with an
error naming the file) are shared by the loaders and ``alignment.models.tokenizer``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.traverse_util import flatten_dict, unflatten_dict

from alignment.models.config import DecoderConfig

if TYPE_CHECKING:
    from alignment.models.decoder import Decoder
    from alignment.models.tokenizer import Tokenizer

class Pretrained(NamedTuple):
    """What every loader returns: ``model, tokenizer, config = load_...(...)``.

    ``tokenizer`` is ``None`` when the checkpoint has none (a Hugging Face directory without
    ``tokenizer.json``).
    """

    model: Decoder
    tokenizer: Tokenizer | None
    config: DecoderConfig


def need(fields: Mapping[str, Any], key: str, source: str) -> Any:
    """``fields[key]``; ``KeyError`` naming ``source`` (the file) and the missing field otherwise."""
    if key not in fields:
        raise KeyError(f"{source}: missing field {key!r}")
    return fields[key]


LAYER_TENSORS = {
    "attn_norm": "input_layernorm.weight",
    "q": "self_attn.q_proj.weight",
    "k": "self_attn.k_proj.weight",
    "v": "self_attn.v_proj.weight",
    "o": "self_attn.o_proj.weight",
    "mlp_norm": "post_attention_layernorm.weight",
    "gate": "mlp.gate_proj.weight",
    "up": "mlp.up_proj.weight",
    "down": "mlp.down_proj.weight",
}


def _to_decoder_layout(name: str, w: np.ndarray, c: DecoderConfig) -> np.ndarray:
    if name in ("attn_norm", "mlp_norm"):
        return w
    if name == "q":
        return w.T.reshape(c.embed_dim, c.num_heads, c.head_dim)
    if name in ("k", "v"):
        return w.T.reshape(c.embed_dim, c.num_kv_heads, c.head_dim)
    if name == "o":
        return w.T.reshape(c.num_heads, c.head_dim, c.embed_dim)
    return w.T


def params_from_hf(tensors: Mapping[str, np.ndarray], config: DecoderConfig, source: str) -> dict:
    """Nested dict of numpy arrays shaped like ``nnx.state(Decoder(config)).to_pure_dict()``.

    ``source`` names the file the tensors came from, for error messages.
    """

    def get(name):
        if name not in tensors:
            raise KeyError(f"{source}: missing tensor {name!r} (have e.g. {sorted(tensors)[:5]})")
        return np.asarray(tensors[name])

    layers = {
        field: np.stack([
            _to_decoder_layout(field, get(f"model.layers.{i}.{suffix}"), config) for i in range(config.num_layers)
        ])
        for field, suffix in LAYER_TENSORS.items()
    }
    params = {"embed": get("model.embed_tokens.weight"), "final_norm": get("model.norm.weight"), "layers": layers}
    if not config.tie_embeddings:
        params["lm_head"] = get("lm_head.weight").T
    return params


def load_params(model: nnx.Module, params: Mapping, source: str) -> nnx.Module:
    """A copy of ``model`` holding ``params`` (a nested dict) cast to the parameter dtype.

    ``model`` may be abstract (``nnx.eval_shape``), which skips random initialisation. Raises
    ``ValueError`` naming ``source`` and every missing, unexpected or mis-shaped entry.
    """
    graphdef, state, rest = nnx.split(model, nnx.Param, ...)
    expected = flatten_dict(nnx.to_pure_dict(state), sep="/")
    given = flatten_dict(params, sep="/")
    problems = [f"missing {k}" for k in expected if k not in given]
    problems += [f"unexpected {k}" for k in given if k not in expected]
    problems += [
        f"{k}: shape {tuple(given[k].shape)} != expected {tuple(expected[k].shape)}"
        for k in expected
        if k in given and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    if problems:
        raise ValueError(f"{source}: parameters do not fit the model: " + "; ".join(problems))
    nnx.replace_by_pure_dict(state, unflatten_dict({k: jnp.asarray(given[k], expected[k].dtype) for k in expected}, sep="/"))
    return nnx.merge(graphdef, state, rest)
