"""Byte-level BPE tokenizer (``tokenizers``) with special ids and the model's own Jinja chat template.

Built from GGUF metadata (``tokenizer.ggml.*``: token list, merges, token types, special ids,
and ``tokenizer.chat_template``) or from a Hugging Face tokenizer directory (``tokenizer.json``,
``tokenizer_config.json``, and ``chat_template.jinja`` where present). SmolLM2's pre-tokenizer
splits every digit into its own piece, then applies the GPT-2 byte-level regex.

``apply_chat_template`` renders the template as transformers does: jinja2's
``ImmutableSandboxedEnvironment`` (a template is untrusted code; here any unsafe attribute
access raises ``SecurityError`` naming the template's file) with ``trim_blocks`` and
``lstrip_blocks``, the ``loopcontrols`` extension, ``raise_exception``, ``strftime_now`` and a
``tojson`` filter that does not escape HTML; the template sees ``messages``,
``add_generation_prompt``, ``bos_token`` and ``eos_token``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
import tokenizers
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import decoders, models, pre_tokenizers

from alignment.models.loaders.convert import ModelFileError, field, need, read_config

GGUF_PRE_TOKENIZERS = ("smollm", "gpt2", "gpt-2", "default")
_CONTROL, _USER_DEFINED = 3, 4  # llama.cpp token types that are whole special tokens


def _raise_exception(message: str):
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


class ChatTemplateEnvironment(ImmutableSandboxedEnvironment):
    """jinja2's immutable sandbox, refusing an unsafe attribute outright.

    The plain sandbox turns ``''.__class__`` into an undefined value that renders as nothing (it
    raises only when used further), so a template probing Python internals would pass unnoticed;
    here every unsafe access raises ``SecurityError``.
    """

    def unsafe_undefined(self, obj: Any, attribute: str):
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")


@functools.lru_cache(maxsize=16)
def compile_chat_template(template: str) -> jinja2.Template:
    """The compiled template, in the sandboxed environment the module docstring describes."""
    env = ChatTemplateEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template)


def _strings(metadata: dict[str, Any], key: str, source: str) -> list[str]:
    values = field(metadata, key, source, "list")
    if not all(isinstance(v, str) for v in values):
        raise ModelFileError(source, "expected a list of strings", key)
    return values


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModelFileError(str(path), f"not UTF-8 text: {e}") from None


class Tokenizer:
    """Text <-> token ids, with ``bos_id``, ``eos_id``, ``pad_id`` and ``apply_chat_template``.

    ``chat_template`` is the model's Jinja template; ``None`` (no template) makes
    ``apply_chat_template`` raise. ``template_source`` (the file it came from) is named when the
    sandbox refuses the template.
    """

    def __init__(
        self,
        tokenizer: tokenizers.Tokenizer,
        *,
        bos_id: int | None,
        eos_id: int,
        pad_id: int | None = None,
        chat_template: str | None = None,
        template_source: str | None = None,
    ):
        self.tokenizer = tokenizer
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.pad_id = eos_id if pad_id is None else pad_id
        self.chat_template = chat_template
        self.template_source = template_source

    @classmethod
    def from_gguf(cls, metadata: dict[str, Any], source: str = "GGUF metadata") -> "Tokenizer":
        """From ``alignment.models.loaders.gguf.gguf_metadata(reader)``; ``source`` names the file."""
        kind, pre = need(metadata, "tokenizer.ggml.model", source), metadata.get("tokenizer.ggml.pre", "default")
        if kind != "gpt2" or pre not in GGUF_PRE_TOKENIZERS:
            raise NotImplementedError(
                f"{source}: tokenizer.ggml.model={kind!r}, tokenizer.ggml.pre={pre!r}; supported: model 'gpt2' "
                f"(byte-level BPE) with pre in {GGUF_PRE_TOKENIZERS}"
            )
        tokens = _strings(metadata, "tokenizer.ggml.tokens", source)
        merges = [tuple(m.split(" ", 1)) for m in _strings(metadata, "tokenizer.ggml.merges", source)]
        if any(len(m) != 2 for m in merges):
            raise ModelFileError(source, "every merge must be two tokens separated by a space", "tokenizer.ggml.merges")
        tok = tokenizers.Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
        byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.pre_tokenizer = (
            pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
            if pre == "smollm"
            else byte_level
        )
        tok.decoder = decoders.ByteLevel()
        types = field(metadata, "tokenizer.ggml.token_type", source, "list", [])
        if len(types) > len(tokens):
            raise ModelFileError(source, f"{len(types)} token types for {len(tokens)} tokens", "tokenizer.ggml.token_type")
        tok.add_special_tokens([
            tokenizers.AddedToken(tokens[i], special=True, normalized=False)
            for i, kind in enumerate(types)
            if kind in (_CONTROL, _USER_DEFINED)
        ])
        return cls(
            tok,
            bos_id=field(metadata, "tokenizer.ggml.bos_token_id", source, "int", None),
            eos_id=field(metadata, "tokenizer.ggml.eos_token_id", source, "int"),
            pad_id=field(metadata, "tokenizer.ggml.padding_token_id", source, "int", None),
            chat_template=field(metadata, "tokenizer.chat_template", source, "str", None),
            template_source=source,
        )

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        eos_token: str,
        bos_token: str | None = None,
        pad_token: str | None = None,
        chat_template: str | None = None,
        template_source: str | None = None,
    ) -> "Tokenizer":
        """From a Hugging Face ``tokenizer.json``, naming the special tokens by their text."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file not found: {path}")
        try:
            tok = tokenizers.Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a bare Exception naming no file
            raise ModelFileError(str(path), f"not a readable tokenizer.json (truncated or corrupt?): {e}") from None

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
            chat_template=chat_template,
            template_source=template_source,
        )

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "Tokenizer":
        """From a Hugging Face tokenizer directory: ``tokenizer.json`` with the special tokens and
        chat template of ``tokenizer_config.json`` (a ``chat_template.jinja`` file takes precedence)."""
        directory = Path(directory)
        config_path = directory / "tokenizer_config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"tokenizer config not found: {config_path}")
        config, source = read_config(config_path), str(config_path)
        template_path = directory / "chat_template.jinja"
        if template_path.is_file():
            template, template_source = _read_text(template_path), str(template_path)
        else:
            template, template_source = config.get("chat_template"), source
        if isinstance(template, list):  # named templates: [{"name": ..., "template": ...}, ...]
            if not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in template):
                raise ModelFileError(source, 'expected a string or a list of {"name", "template"} objects', "chat_template")
            named = {t["name"]: t.get("template") for t in template}
            template = need(named, "default", f"{source}: chat_template")
        if template is not None and not isinstance(template, str):
            raise ModelFileError(template_source, f"expected a string, got {type(template).__name__}", "chat_template")

        def text(key, required=False):  # a string, or a serialised AddedToken {"content": ...}
            token = need(config, key, source) if required else config.get(key)
            token = token.get("content") if isinstance(token, dict) else token
            if not (token is None and not required) and not isinstance(token, str):
                raise ModelFileError(source, 'expected a token string or {"content": string}', key)
            return token

        return cls.from_file(
            directory / "tokenizer.json",
            eos_token=text("eos_token", required=True),
            bos_token=text("bos_token"),
            pad_token=text("pad_token"),
            chat_template=template,
            template_source=template_source,
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
        """The chat template's text of ``messages`` (dicts with "role" and "content")."""
        if self.chat_template is None:
            raise ValueError(
                "this tokenizer has no chat template (none in the GGUF metadata 'tokenizer.chat_template' or in "
                "tokenizer_config.json); pass chat_template= to Tokenizer"
            )
        bad = [i for i, m in enumerate(messages) if not {"role", "content"} <= set(m)]
        if bad:
            raise ValueError(f"chat messages {bad} lack a 'role' or 'content' key")
        special = {name: None if i is None else self.tokenizer.id_to_token(i) for name, i in (("bos_token", self.bos_id), ("eos_token", self.eos_id))}
        try:
            return compile_chat_template(self.chat_template).render(
                messages=[dict(m) for m in messages], add_generation_prompt=add_generation_prompt, **special
            )
        except SecurityError as e:
            source = self.template_source or "this tokenizer"
            raise SecurityError(f"chat template of {source} refused by the sandbox: {e}") from e

    def encode_chat(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> list[int]:
        return self.encode(self.apply_chat_template(messages, add_generation_prompt))

