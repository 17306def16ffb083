"""Hugging Face Llama-family checkpoints: ``config.json`` + ``model.safetensors`` (or shards).

Reads both the transformers 4 (``rope_theta``, ``rope_scaling``) and transformers 5
(``rope_parameters``) spellings of RoPE settings. RoPE types "default", "linear" and "llama3"
(Llama 3.1 and later) are implemented; others raise ``NotImplementedError`` naming the type.

``load_hf`` reads every tensor whole on the host; ``load_hf_sharded`` places the model on a mesh,
each process reading only the blocks its own devices hold (no sharded tensor is read whole).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx
from flax.traverse_util import flatten_dict, unflatten_dict
from jax.sharding import Mesh
from safetensors import SafetensorError, safe_open

from alignment.models.config import ROPE_SCALING_KINDS, DecoderConfig, RopeScaling
from alignment.models.decoder import Decoder
from alignment.models.loaders.convert import (
    ModelFileError,
    Pretrained,
    decoder_layout,
    hf_tensor_name,
    field,
    from_file,
    load_params,
    params_from_hf,
    read_config,
    read_decoder_slice,
)
from alignment.models.partitioning import state_shardings
from alignment.models.tokenizer import Tokenizer
from alignment.parallel import DEFAULT_RULES

SUPPORTED_MODEL_TYPES = ("llama",)


def config_from_hf(hf: dict[str, Any], source: str, **overrides) -> DecoderConfig:
    """``DecoderConfig`` from a transformers ``config.json`` dict; ``overrides`` replace fields.

    A missing field raises ``MissingFieldError`` (a ``KeyError``), a field of the wrong type or a
    combination the decoder cannot take ``ModelFileError``; both name ``source`` and the field.
    """
    if not isinstance(hf, dict):
        raise ModelFileError(source, f"expected a JSON object, got {type(hf).__name__}")
    model_type = hf.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(f"{source}: model_type {model_type!r} is not one of {SUPPORTED_MODEL_TYPES}")
    unsupported = [
        f"{key}={hf[key]!r}"
        for key, ok in (("hidden_act", "silu"), ("attention_bias", False), ("mlp_bias", False))
        if key in hf and hf[key] != ok
    ]
    rope = {**field(hf, "rope_scaling", source, "dict", {}), **field(hf, "rope_parameters", source, "dict", {})}
    rope_type = rope.get("rope_type") or rope.get("type") or "default"
    if rope_type not in ("default", *ROPE_SCALING_KINDS):
        unsupported.append(f"rope_type={rope_type!r} (implemented: 'default', {', '.join(map(repr, ROPE_SCALING_KINDS))})")
    if unsupported:
        raise NotImplementedError(f"{source}: unsupported settings {unsupported}")
    heads, width = field(hf, "num_attention_heads", source, "count"), field(hf, "hidden_size", source, "count")
    fields = dict(
        vocab_size=field(hf, "vocab_size", source, "count"),
        embed_dim=width,
        num_layers=field(hf, "num_hidden_layers", source, "count"),
        num_heads=heads,
        num_kv_heads=field(hf, "num_key_value_heads", source, "count", heads),
        head_dim=field(hf, "head_dim", source, "count", width // heads),
        mlp_dim=field(hf, "intermediate_size", source, "count"),
        rope_theta=field(rope, "rope_theta", source, "number", field(hf, "rope_theta", source, "number", 10_000.0)),
        rope_scaling=None if rope_type == "default" else _rope_scaling(rope_type, rope, source),
        norm_eps=field(hf, "rms_norm_eps", source, "number", 1e-6),
        tie_embeddings=field(hf, "tie_word_embeddings", source, "bool", False),
        max_length=field(hf, "max_position_embeddings", source, "count", 2048),
    )
    return from_file(source, DecoderConfig, **{**fields, **overrides})


def _rope_scaling(kind: str, rope: dict[str, Any], source: str) -> RopeScaling:
    source = f"{source}: rope_type {kind!r}"
    fields = {"factor": field(rope, "factor", source, "number")}
    if kind == "llama3":
        for ours, theirs, type_ in (("low_freq_factor", "low_freq_factor", "number"),
                                    ("high_freq_factor", "high_freq_factor", "number"),
                                    ("original_max_length", "original_max_position_embeddings", "count")):
            fields[ours] = field(rope, theirs, source, type_)
    return from_file(source, RopeScaling, kind, **fields)


def _safetensors_files(directory: Path) -> list[Path]:
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map = field(read_config(index), "weight_map", str(index), "dict")
        if not all(isinstance(name, str) for name in weight_map.values()):
            raise ModelFileError(str(index), "expected file names (strings) as values", "weight_map")
        shards = sorted(set(weight_map.values()))
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
        with _safe_open(path, "flax") as f, _safetensors_errors(path):
            tensors.update({name: np.asarray(f.get_tensor(name)) for name in f.keys()})
    return tensors


@contextlib.contextmanager
def _safetensors_errors(path: Path):
    """Turns the errors safetensors raises for a damaged file (``SafetensorError``, which names no
    file) into ``ModelFileError`` naming ``path``."""
    try:
        yield
    except SafetensorError as e:
        raise ModelFileError(str(path), f"not a readable safetensors file (truncated or corrupt?): {e}") from None


@contextlib.contextmanager
def _safe_open(path: Path, framework: str):
    """``safe_open(path)``, a damaged header raising ``ModelFileError`` naming ``path``."""
    with _safetensors_errors(path):
        handle = safe_open(str(path), framework=framework)
    with handle as f:
        yield f


def load_hf(directory: str | Path, **config_overrides) -> Pretrained:
    """A Hugging Face checkpoint directory: ``(model, tokenizer, config)``.

    The tokenizer is ``Tokenizer.from_pretrained(directory)``, or ``None`` without a ``tokenizer.json``.
    """
    directory = Path(directory)
    config = _read_config(directory, config_overrides)
    params = params_from_hf(read_safetensors(directory), config, str(directory))
    abstract = nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(0)))
    return Pretrained(load_params(abstract, params, str(directory)), _tokenizer(directory), config)


def load_hf_sharded(directory: str | Path, mesh: Mesh, rules=DEFAULT_RULES, **config_overrides) -> Pretrained:
    """``load_hf(directory)`` placed on ``mesh``, every device holding only its shard.

    The decoder is built abstractly (``nnx.eval_shape``) and each parameter is made with
    ``jax.make_array_from_callback`` at the sharding its logical axes get under ``rules``: a
    device's block is read from the safetensors files with ``get_slice`` (only that block,
    through ``convert.read_decoder_slice``: transposed weights at the transposed index, stacked
    layers one layer at a time) and cast to the parameter dtype. Each distinct block is read
    once per process. Raises ``ValueError`` naming every missing or mis-shaped tensor before
    reading any.
    """
    directory = Path(directory)
    config = _read_config(directory, config_overrides)
    graphdef, state, rest = nnx.split(nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(0), rules=rules)), nnx.Param, ...)
    shapes = flatten_dict(nnx.to_pure_dict(state), sep="/")
    shardings = flatten_dict(nnx.to_pure_dict(state_shardings(state, mesh, rules)), sep="/")
    with contextlib.ExitStack() as files:
        handles = [files.enter_context(_safe_open(path, "numpy")) for path in _safetensors_files(directory)]
        tensors = {name: handle for handle in handles for name in handle.keys()}
        _check_tensors(tensors, shapes, config, str(directory))
        arrays = {
            path: _array_from_blocks(shape.shape, shardings[path], shape.dtype, _block_reader(path, tensors, config))
            for path, shape in shapes.items()
        }
    nnx.replace_by_pure_dict(state, unflatten_dict(arrays, sep="/"))
    return Pretrained(nnx.merge(graphdef, state, rest), _tokenizer(directory), config)


def _read_config(directory: Path, overrides: dict[str, Any]) -> DecoderConfig:
    config_path = directory / "config.json"
    return config_from_hf(read_config(config_path), str(config_path), **overrides)


def _tokenizer(directory: Path) -> Tokenizer | None:
    return Tokenizer.from_pretrained(directory) if (directory / "tokenizer.json").is_file() else None


def _sources(path: str, config: DecoderConfig) -> tuple[str, list[int | None]]:
    """The decoder name of parameter ``path`` ("embed", "layers/q", ...) and the layers of its
    torch tensors, stacked in that order (``[None]``: one tensor, not stacked)."""
    *parents, name = path.split("/")
    return name, (list(range(config.num_layers)) if parents == ["layers"] else [None])


def _check_tensors(tensors: dict, shapes: dict, config: DecoderConfig, source: str) -> None:
    """``ValueError`` naming every tensor the model needs that is missing or has another shape."""
    problems = []
    for path, target in shapes.items():
        name, layers = _sources(path, config)
        layout = decoder_layout(name, config)
        shape = tuple(target.shape[1:] if layers != [None] else target.shape)
        expected = shape if layout is None else (math.prod(layout[1]), math.prod(layout[0]))
        for tensor in (hf_tensor_name(name, layer) for layer in layers):
            found = tuple(tensors[tensor].get_slice(tensor).get_shape()) if tensor in tensors else None
            if found is None:
                problems.append(f"missing {tensor}")
            elif found != expected:
                problems.append(f"{tensor}: shape {found} != expected {expected}")
    if problems:
        raise ValueError(f"{source}: tensors do not fit the model: " + "; ".join(problems))


def _block_reader(path: str, tensors: dict, config: DecoderConfig) -> Callable[[tuple[slice, ...]], np.ndarray]:
    """``read(index)``: block ``index`` of decoder parameter ``path``; a stacked parameter reads
    the block of each layer in ``index[0]``."""
    name, layers = _sources(path, config)

    def read(layer, index):
        tensor = hf_tensor_name(name, layer)
        return read_decoder_slice(name, tensors[tensor].get_slice(tensor), index, config)

    if layers == [None]:
        return lambda index: read(None, index)
    return lambda index: np.stack([read(layer, index[1:]) for layer in layers[index[0]]])


def _array_from_blocks(shape, sharding, dtype, read) -> jax.Array:
    """``jax.make_array_from_callback`` reading each distinct block once (replicas share it)."""
    blocks = {}

    def block(index):
        key = tuple((s.start, s.stop, s.step) for s in index)  # slices are unhashable before Python 3.12
        if key not in blocks:
            blocks[key] = np.asarray(read(index), dtype)
        return blocks[key]

    return jax.make_array_from_callback(tuple(shape), sharding, block)
