"""Hugging Face Llama tensor names and layouts -> the parameters of ``alignment.models.Decoder``.

Both real-weight sources end here: safetensors checkpoints use these names directly, and the
GGUF reader renames llama.cpp tensors to them. Torch linear weights are ``[out, in]``; the
decoder stores ``[in, out]`` with the head axes split out:

  q_proj [H*hd, D] -> q [D, H, hd]      k_proj, v_proj [KV*hd, D] -> [D, KV, hd]
  o_proj [D, H*hd] -> o [H, hd, D]      gate_proj, up_proj [F, D] -> [D, F];  down_proj [D, F] -> [F, D]
  lm_head [V, D]   -> lm_head [D, V]    embeddings [V, D] and norm scales unchanged.

``decoder_layout`` states these transforms once: ``params_from_hf`` applies them to whole
tensors, ``read_decoder_slice`` reads one shard of a decoder tensor from the torch tensor
without reading the rest (the sharded safetensors loader). ``Pretrained`` (what every loader
returns), ``need`` and ``field`` (a metadata field, required or typed, with an error naming the
file and the field), ``from_file`` (a config built from a file's values, its errors naming the
file) and ``ModelFileError`` (a model file that is truncated, corrupt or has a field of the wrong
type) are shared by the loaders and ``alignment.models.tokenizer``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.traverse_util import flatten_dict, unflatten_dict

from alignment.files import DamagedFileError, read_json
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


class ModelFileError(ValueError):
    """A model file (GGUF, safetensors, ``config.json``, tokenizer files) that cannot be used:
    truncated, corrupt, not the format it should be, or a field of the wrong type. The message
    starts with the file (``source``) and names the field where there is one."""

    def __init__(self, source: str, detail: str, field: str | None = None):
        super().__init__(f"{source}: " + (f"field {field!r}: " if field is not None else "") + detail)
        self.source, self.field, self.detail = source, field, detail


class MissingFieldError(ModelFileError, KeyError):
    """A required field (or tensor) is absent; also a ``KeyError``, which ``need`` has always raised."""

    def __init__(self, source: str, field: str, what: str = "field", hint: str = ""):
        ValueError.__init__(self, f"{source}: missing {what} {field!r}" + (f" ({hint})" if hint else ""))
        self.source, self.field, self.detail = source, field, f"missing {what}"

    __str__ = ValueError.__str__  # not KeyError's quoted repr


def need(fields: Mapping[str, Any], key: str, source: str) -> Any:
    """``fields[key]``; ``MissingFieldError`` (a ``KeyError``) naming ``source`` (the file) and the
    missing field otherwise."""
    if key not in fields:
        raise MissingFieldError(source, key)
    return fields[key]


T = TypeVar("T")
_REQUIRED = object()
FIELD_KINDS = ("count", "int", "number", "bool", "str", "dict", "list")


def field(fields: Mapping[str, Any], key: str, source: str, kind: str, default: Any = _REQUIRED) -> Any:
    """``fields[key]`` checked to be of ``kind``, else ``ModelFileError`` naming ``source`` and ``key``.

    Kinds: "count" (an integer >= 1), "int", "number" (a finite int or float, returned as float),
    "bool", "str", "dict", "list". With a ``default``, an absent or null field gives the default;
    without one, an absent field raises ``MissingFieldError``.
    """
    if fields.get(key) is None and default is not _REQUIRED:
        return default
    value = need(fields, key, source)
    boolean = isinstance(value, (bool, np.bool_))
    if kind in ("count", "int"):
        if boolean or not isinstance(value, numbers.Integral) or (kind == "count" and value < 1):
            what = "a positive integer" if kind == "count" else "an integer"
            raise ModelFileError(source, f"expected {what}, got {_describe(value)}", key)
        return int(value)
    if kind == "number":
        try:
            number = math.nan if boolean or not isinstance(value, numbers.Real) else float(value)
        except OverflowError:  # an int beyond float's range
            number = math.inf
        if not math.isfinite(number):
            raise ModelFileError(source, f"expected a finite number, got {_describe(value)}", key)
        return number
    types = {"bool": (bool, np.bool_), "str": str, "dict": Mapping, "list": (list, tuple)}
    if kind not in types:
        raise ValueError(f"unknown field kind {kind!r}; valid kinds: {FIELD_KINDS}")
    if not isinstance(value, types[kind]):
        raise ModelFileError(source, f"expected a {kind}, got {_describe(value)}", key)
    return bool(value) if kind == "bool" else value


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:30] + '...'}"


def from_file(source: str, build: Callable[..., T], *args, **kwargs) -> T:
    """``build(*args, **kwargs)`` (e.g. ``DecoderConfig``), its ``ValueError`` as a
    ``ModelFileError`` naming ``source``, the file the values came from."""
    try:
        return build(*args, **kwargs)
    except ValueError as e:
        raise ModelFileError(source, str(e)) from e


def read_config(path: str | Path) -> dict[str, Any]:
    """The JSON object of a ``config.json`` (or any JSON model file): ``FileNotFoundError``, or
    ``ModelFileError`` naming the file when it is not UTF-8 JSON holding an object."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        value = read_json(path)
    except DamagedFileError as e:
        raise ModelFileError(str(path), f"not a JSON file (truncated or corrupt?): {str(e.__cause__)[:200]}") from None
    if not isinstance(value, dict):
        raise ModelFileError(str(path), f"expected a JSON object, got {type(value).__name__}")
    return value


GLOBAL_TENSORS = {"embed": "model.embed_tokens.weight", "final_norm": "model.norm.weight", "lm_head": "lm_head.weight"}
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


def hf_tensor_name(name: str, layer: int | None = None) -> str:
    """The Hugging Face tensor of decoder parameter ``name`` (a ``LAYER_TENSORS`` field with its
    ``layer``, or a ``GLOBAL_TENSORS`` key)."""
    return GLOBAL_TENSORS[name] if layer is None else f"model.layers.{layer}.{LAYER_TENSORS[name]}"


def decoder_layout(name: str, c: DecoderConfig) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """How the torch tensor of decoder parameter ``name`` (one layer's) maps to the decoder's.

    ``None``: stored as is (embeddings, norm scales). Otherwise ``(in_axes, out_axes)``: the
    torch ``[out, in]`` matrix is transposed and its two axes split into these, i.e.
    ``decoder = w.T.reshape(*in_axes, *out_axes)`` (e.g. q: ``[H*hd, D] -> [D, H, hd]``).
    """
    d, h, kv, hd = c.embed_dim, c.num_heads, c.num_kv_heads, c.head_dim
    return {
        "q": ((d,), (h, hd)), "k": ((d,), (kv, hd)), "v": ((d,), (kv, hd)), "o": ((h, hd), (d,)),
        "gate": ((d,), (c.mlp_dim,)), "up": ((d,), (c.mlp_dim,)), "down": ((c.mlp_dim,), (d,)),
        "lm_head": ((d,), (c.vocab_size,)),
    }.get(name)


def _to_decoder_layout(name: str, w: np.ndarray, c: DecoderConfig) -> np.ndarray:
    layout = decoder_layout(name, c)
    return w if layout is None else w.T.reshape(*layout[0], *layout[1])


def read_decoder_slice(name: str, tensor, index: tuple[slice, ...], c: DecoderConfig) -> np.ndarray:
    """``_to_decoder_layout(name, tensor, c)[index]``, reading only the block of ``tensor`` it covers.

    ``tensor`` is sliced like a numpy array of the torch layout (e.g. a safetensors
    ``get_slice`` handle, which reads just the requested block); ``index`` is one slice per
    decoder axis. A transposed weight is read at the transposed index. Split axes such as
    ``(heads, head_dim)`` come from one torch axis: slicing the leading one reads a contiguous
    range of it; slices of the trailing ones are taken after the read (the logical rules
    never shard ``head_dim``, so reads stay shard-sized).
    """
    layout = decoder_layout(name, c)
    if layout is None:
        return np.asarray(tensor[tuple(index)])
    in_axes, out_axes = layout
    cols, in_block, in_pick = _merged_range(index[: len(in_axes)], in_axes)
    rows, out_block, out_pick = _merged_range(index[len(in_axes) :], out_axes)
    block = np.asarray(tensor[rows, cols]).T.reshape(*in_block, *out_block)
    return block[in_pick + out_pick]


def _merged_range(index: tuple[slice, ...], axes: tuple[int, ...]) -> tuple[slice, tuple[int, ...], tuple[slice, ...]]:
    """For split axes ``axes`` of one row-major torch axis: the contiguous range of that axis that
    covers ``index``, the covered block's shape in split axes, and ``index`` within the block."""
    start, stop, step = index[0].indices(axes[0])
    inner = math.prod(axes[1:])
    return slice(start * inner, stop * inner), (stop - start, *axes[1:]), (slice(None, None, step), *index[1:])


def params_from_hf(tensors: Mapping[str, np.ndarray], config: DecoderConfig, source: str) -> dict:
    """Nested dict of numpy arrays shaped like ``nnx.state(Decoder(config)).to_pure_dict()``.

    ``source`` names the file the tensors came from, for error messages.
    """

    def get(name):
        if name not in tensors:
            raise MissingFieldError(source, name, "tensor", f"have e.g. {sorted(tensors)[:5]}")
        return np.asarray(tensors[name])

    layers = {
        field: np.stack([
            _to_decoder_layout(field, get(hf_tensor_name(field, i)), config) for i in range(config.num_layers)
        ])
        for field in LAYER_TENSORS
    }
    names = [name for name in GLOBAL_TENSORS if name != "lm_head" or not config.tie_embeddings]
    return {**{name: _to_decoder_layout(name, get(hf_tensor_name(name)), config) for name in names}, "layers": layers}


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
