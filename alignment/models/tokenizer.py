"""Byte-level BPE tokenizer (``tokenizers``) with special ids and the ChatML chat template.

Built from GGUF metadata (``tokenizer.ggml.*``: token list, merges, token types, special ids,
chat template) or from a Hugging Face ``tokenizer.json``. SmolLM2's pre-tokenizer splits every
digit into its own piece, then applies the GPT-2 byte-level regex.

ChatML renders each message as ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` and the generation
prompt as ``<|im_start|>assistant\\n``. Some templates (SmolLM2's) insert a default system
message when the conversation does not start with one; it is read from the GGUF template.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tokenizers
from tokenizers import decoders, models, pre_tokenizers

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
GGUF_PRE_TOKENIZERS = ("smollm", "gpt2", "gpt-2", "default")
_CONTROL, _USER_DEFINED = 3, 4  # llama.cpp token types that are whole special tokens
_DEFAULT_SYSTEM = re.compile(r"messages\[0\]\['role'\] != 'system'.*?<\|im_start\|>system(?:\n|\\n)(.*?)<\|im_end\|>", re.S)


class Tokenizer:
    """Text <-> token ids, with ``bos_id``, ``eos_id``, ``pad_id`` and ``apply_chat_template``."""

    def __init__(
        self,
        tokenizer: tokenizers.Tokenizer,
        *,
        bos_id: int | None,
        eos_id: int,
        pad_id: int | None = None,
        default_system: str | None = None,
    ):
        self.tokenizer = tokenizer
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.pad_id = eos_id if pad_id is None else pad_id
        self.default_system = default_system

    @classmethod
    def from_gguf(cls, metadata: dict[str, Any], source: str = "GGUF metadata") -> "Tokenizer":
        """From ``alignment.models.loaders.gguf.gguf_metadata(reader)``; ``source`` names the file."""

        def need(key):
            if key not in metadata:
                raise KeyError(f"{source}: missing GGUF field {key!r}")
            return metadata[key]

        kind, pre = need("tokenizer.ggml.model"), metadata.get("tokenizer.ggml.pre", "default")
        if kind != "gpt2" or pre not in GGUF_PRE_TOKENIZERS:
            raise NotImplementedError(
                f"{source}: tokenizer.ggml.model={kind!r}, tokenizer.ggml.pre={pre!r}; supported: model 'gpt2' "
                f"(byte-level BPE) with pre in {GGUF_PRE_TOKENIZERS}"
            )
        tokens = need("tokenizer.ggml.tokens")
        merges = [tuple(m.split(" ", 1)) for m in need("tokenizer.ggml.merges")]
        tok = tokenizers.Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.pre_tokenizer = (
            pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
            if pre == "smollm"
            else byte_level
        )
        tok.decoder = decoders.ByteLevel()
        types = metadata.get("tokenizer.ggml.token_type", [])
        tok.add_special_tokens([
            tokenizers.AddedToken(tokens[i], special=True, normalized=False)
            for i, kind in enumerate(types)
            if kind in (_CONTROL, _USER_DEFINED)
        ])
        match = _DEFAULT_SYSTEM.search(metadata.get("tokenizer.chat_template", ""))
        return cls(
            tok,
            bos_id=metadata.get("tokenizer.ggml.bos_token_id"),
            eos_id=need("tokenizer.ggml.eos_token_id"),
            pad_id=metadata.get("tokenizer.ggml.padding_token_id"),
            default_system=match.group(1) if match else None,
        )

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        eos_token: str,
        bos_token: str | None = None,
        pad_token: str | None = None,
        default_system: str | None = None,
    ) -> "Tokenizer":
        """From a Hugging Face ``tokenizer.json``, naming the special tokens by their text."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file not found: {path}")
        tok = tokenizers.Tokenizer.from_file(str(path))

        def token_id(token):
            if token is None:
                return None
            index = tok.token_to_id(token)
            if index is None:
                raise KeyError(f"{path}: special token {token!r} is not in the vocabulary")
            return index

        return cls(
            tok,
            bos_id=token_id(bos_token),
            eos_id=token_id(eos_token),
            pad_id=token_id(pad_token),
            default_system=default_system,
        )

    def save(self, path: str | Path) -> None:
        """Writes ``tokenizer.json`` (readable by ``from_file`` and by transformers)."""
        self.tokenizer.save(str(path))

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; special-token text (e.g. ``<|im_end|>``) maps to its single id."""
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """ChatML text of ``messages`` (dicts with "role" and "content")."""
        bad = [i for i, m in enumerate(messages) if not {"role", "content"} <= set(m)]
        if bad:
            raise ValueError(f"chat messages {bad} lack a 'role' or 'content' key")
        if self.default_system is not None and (not messages or messages[0]["role"] != "system"):
            messages = [{"role": "system", "content": self.default_system}, *messages]
        text = "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages)
        return text + (f"{IM_START}assistant\n" if add_generation_prompt else "")

    def encode_chat(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> list[int]:
        return self.encode(self.apply_chat_template(messages, add_generation_prompt))

