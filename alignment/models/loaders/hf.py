"""Hugging Face Llama-family checkpoints: ``config.json`` + ``model.safetensors`` (or shards).

Reads both the transformers 4 (``rope_theta``, ``rope_scaling``) and transformers 5
(``rope_parameters``) spellings of RoPE settings. RoPE types "default", "linear" and "llama3"
(Llama 3.1 and later) are implemented; others raise ``NotImplementedError`` naming the type.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from flax import nnx
from safetensors import safe_open

from alignment.models.config import ROPE_SCALING_KINDS, DecoderConfig, RopeScaling
from alignment.models.decoder import Decoder
from alignment.models.loaders.convert import Pretrained, load_params, need, params_from_hf
from alignment.models.tokenizer import Tokenizer

SUPPORTED_MODEL_TYPES = ("llama",)


def config_from_hf(hf: dict[str, Any], source: str, **overrides) -> DecoderConfig:
    """``DecoderConfig`` from a transformers ``config.json`` dict; ``overrides`` replace fields."""
    model_type = hf.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(f"{source}: model_type {model_type!r} is not one of {SUPPORTED_MODEL_TYPES}")
    unsupported = [
        f"{key}={hf[key]!r}"
        for key, ok in (("hidden_act", "silu"), ("attention_bias", False), ("mlp_bias", False))
        if key in hf and hf[key] != ok
    ]
    rope = {**(hf.get("rope_scaling") or {}), **(hf.get("rope_parameters") or {})}
    rope_type = rope.get("rope_type") or rope.get("type") or "default"
    if rope_type not in ("default", *ROPE_SCALING_KINDS):
        unsupported.append(f"rope_type={rope_type!r} (implemented: 'default', {', '.join(map(repr, ROPE_SCALING_KINDS))})")
    if unsupported:
        raise NotImplementedError(f"{source}: unsupported settings {unsupported}")
    heads, width = need(hf, "num_attention_heads", source), need(hf, "hidden_size", source)
    fields = dict(
        vocab_size=need(hf, "vocab_size", source),
        embed_dim=width,
        num_layers=need(hf, "num_hidden_layers", source),
        num_heads=heads,
        num_kv_heads=hf.get("num_key_value_heads") or heads,
        head_dim=hf.get("head_dim") or width // heads,
        mlp_dim=need(hf, "intermediate_size", source),
        rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10_000.0))),
        rope_scaling=None if rope_type == "default" else _rope_scaling(rope_type, rope, source),
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        max_length=hf.get("max_position_embeddings", 2048),
    )
    return DecoderConfig(**{**fields, **overrides})


def _rope_scaling(kind: str, rope: dict[str, Any], source: str) -> RopeScaling:
    source = f"{source}: rope_type {kind!r}"
    fields = {"factor": float(need(rope, "factor", source))}
    if kind == "llama3":
        for ours, theirs in (("low_freq_factor", "low_freq_factor"), ("high_freq_factor", "high_freq_factor"),
                             ("original_max_length", "original_max_position_embeddings")):
            fields[ours] = need(rope, theirs, source)
    return RopeScaling(kind, **fields)


def _safetensors_files(directory: Path) -> list[Path]:
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        missing = [name for name in shards if not (directory / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{index} lists shards that are missing: {missing}")
        return [directory / name for name in shards]
    single = directory / "model.safetensors"
    if not single.is_file():
        raise FileNotFoundError(f"no model.safetensors or model.safetensors.index.json in {directory}")
    return [single]


def read_safetensors(directory: str | Path) -> dict[str, np.ndarray]:
    """All tensors of a checkpoint directory as numpy arrays (bfloat16 through ``ml_dtypes``)."""
    tensors = {}
    for path in _safetensors_files(Path(directory)):
        with safe_open(str(path), framework="flax") as f:
            tensors.update({name: np.asarray(f.get_tensor(name)) for name in f.keys()})
    return tensors


def load_hf(directory: str | Path, **config_overrides) -> Pretrained:
    """A Hugging Face checkpoint directory: ``(model, tokenizer, config)``.

    The tokenizer is ``Tokenizer.from_pretrained(directory)``, or ``None`` without a ``tokenizer.json``.
    """
    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"config file not found: {config_path}")
    config = config_from_hf(json.loads(config_path.read_text()), str(config_path), **config_overrides)
    params = params_from_hf(read_safetensors(directory), config, str(directory))
    abstract = nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(0)))
    tokenizer = Tokenizer.from_pretrained(directory) if (directory / "tokenizer.json").is_file() else None
    return Pretrained(load_params(abstract, params, str(directory)), tokenizer, config)
