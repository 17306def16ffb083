"""Property-based fuzzing of every parser of outside input: preference files and model files.

Preference files: every line of a fuzzed file ends as a record, a counted blank, or a counted
skip (``on_error="skip"``), or as the project's ``DataError`` naming file, line and field
(``on_error="raise"``); a damaged gzip stream raises ``DataError`` ("bad_compression") in both
modes. Never a bare json/gzip/unicode exception, never a record dropped uncounted.

Model files (GGUF, safetensors, ``config.json``, tokenizer files): truncated, garbage or mistyped
input raises ``ModelFileError`` (a ``ValueError``; ``MissingFieldError`` is also a ``KeyError``)
naming the file and, where there is one, the field; never a bare struct/Key/IndexError.

Examples are derandomized (the same on every run) and few, so the file stays fast.
"""

import collections
import contextlib
import gzip
import json
from pathlib import Path

import hypothesis.strategies as st
import jax
import numpy as np
import pytest
from flax import nnx
from hypothesis import HealthCheck, given, settings

from alignment import data
from alignment.files import DamagedFileError
from alignment.models.config import get_config
from alignment.models.decoder import Decoder
from alignment.models.loaders.checkpoint import restore_params, save_params
from alignment.models.loaders.convert import LAYER_TENSORS, MissingFieldError, ModelFileError
from alignment.models.loaders.gguf import load_gguf, smollm2_gguf_path
from alignment.models.loaders.hf import load_hf, load_hf_sharded
from alignment.parallel import make_mesh
from alignment.models.tokenizer import Tokenizer


def fuzz(n: int):
    """``n`` examples, the same on every run (derandomized, no example database)."""
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# --------------------------------------------------------------------------------------------
# Preference files
# --------------------------------------------------------------------------------------------

TEXT = st.text(max_size=12)  # hypothesis' text never holds lone surrogates
WORDS = st.text(min_size=1, max_size=12).filter(str.strip)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
NOT_STR = JSON.filter(lambda v: not isinstance(v, str))
NOT_NUMBER = JSON.filter(lambda v: isinstance(v, bool) or not isinstance(v, (int, float)))
BAD_UTF8 = st.sampled_from([b"\xff", b"\xc3\x28", b"\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82"])
BLANK = st.sampled_from([b"", b" ", b"\t", b"  \r", b"\x0c"])


@st.composite
def good_pair(draw) -> dict:
    """A prompt_pairs object that the reader must keep as it is."""
    if draw(st.booleans()):
        prompt = draw(TEXT)
    else:
        turns = draw(st.lists(st.sampled_from(data.ROLES), max_size=3))
        prompt = [{"role": role, "content": draw(TEXT)} for role in [*turns, "user"]]
    chosen, rejected = draw(WORDS), draw(WORDS)
    if chosen.strip() == rejected.strip():
        rejected += " (other)"
    obj = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    if draw(st.booleans()):
        obj["label"] = draw(st.floats(0.0, 1.0))
    return obj


@st.composite
def fuzzed_line(draw):
    """``(raw line, expected)``: expected is "blank", ("keep", obj) or ("skip", reason, field)."""
    obj = draw(good_pair())
    kind = draw(st.sampled_from([
        "keep", "huge", "blank", "missing", "wrong_str", "wrong_prompt", "wrong_label", "label_range",
        "bad_utf8", "surrogate", "cut", "not_object", "deep", "digits", "bad_turns", "empty", "identical",
    ]))
    line = lambda o: json.dumps(o).encode()  # noqa: E731  (ASCII: "\ud800" stays an escape)
    if kind == "keep":
        return line(obj), ("keep", obj)
    if kind == "huge":  # one long line (up to 2 MB), kept whole
        obj["chosen"] = "z" * draw(st.integers(2**16, 2**21))
        return line(obj), ("keep", obj)
    if kind == "blank":
        return draw(BLANK), "blank"
    if kind == "missing":
        field = draw(st.sampled_from(["prompt", "chosen", "rejected"]))
        del obj[field]
        return line(obj), ("skip", "missing_field", field)
    if kind == "wrong_str":
        field = draw(st.sampled_from(["chosen", "rejected"]))
        obj[field] = draw(NOT_STR)
        return line(obj), ("skip", "wrong_type", field)
    if kind == "wrong_prompt":
        obj["prompt"] = draw(NOT_STR.filter(lambda v: not isinstance(v, list)) | st.just([]))
        return line(obj), ("skip", "wrong_type", "prompt")
    if kind == "wrong_label":
        obj["label"] = draw(NOT_NUMBER)
        return line(obj), ("skip", "wrong_type", "label")
    if kind == "label_range":
        obj["label"] = draw(
            st.floats().filter(lambda x: not 0.0 <= x <= 1.0)
            | st.integers(2, 400).map(lambda k: 10**k)
            | st.integers(max_value=-1)
        )
        return line(obj), ("skip", "out_of_range", "label")
    if kind == "bad_utf8":
        raw = line(obj)
        at = draw(st.integers(0, len(raw)))
        return raw[:at] + draw(BAD_UTF8) + raw[at:], ("skip", "bad_encoding", "<line>")
    if kind == "surrogate":
        field = draw(st.sampled_from(["chosen", "rejected"]))
        obj[field] += draw(st.sampled_from(["\ud800", "\udfff", "\udc80x"]))
        return line(obj), ("skip", "bad_encoding", field)
    if kind == "cut":
        text = json.dumps(obj, ensure_ascii=False)
        return text[: draw(st.integers(1, len(text) - 1))].encode(), ("skip", "malformed_json", "<line>")
    if kind == "not_object":
        return line(draw(JSON.filter(lambda v: not isinstance(v, dict)))), ("skip", "malformed_json", "<line>")
    if kind == "deep":  # valid JSON nested far beyond the parser's recursion limit
        depth = draw(st.integers(5_000, 50_000))
        obj["prompt"] = "@"
        return line(obj).replace(b'"@"', b"[" * depth + b"]" * depth), ("skip", "malformed_json", "<line>")
    if kind == "digits":  # an integer longer than Python converts (4300 digits)
        obj["label"] = "@"
        digits = b"7" * draw(st.integers(4_400, 20_000))
        return line(obj).replace(b'"@"', digits), ("skip", "malformed_json", "<line>")
    if kind == "bad_turns":  # a prompt that does not end with a user turn
        obj["prompt"] = [{"role": "user", "content": "x"}, {"role": draw(st.sampled_from(["assistant", "system"])), "content": draw(TEXT)}]
        return line(obj), ("skip", "bad_dialogue", "prompt")
    if kind == "empty":
        field = draw(st.sampled_from(["chosen", "rejected"]))
        obj[field] = draw(st.sampled_from(["", " ", "\n\t"]))
        return line(obj), ("skip", "empty_response", field)
    obj["rejected"] = f"  {obj['chosen']} "
    return line(obj), ("skip", "identical_responses", "rejected")


def write_lines(path: Path, lines: list[bytes], compress: bool) -> Path:
    text = b"".join(raw + b"\n" for raw in lines)
    path.write_bytes(gzip.compress(text, compresslevel=1) if compress else text)
    return path


def same_record(record, obj) -> bool:
    prompt = obj["prompt"]
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    return (record.messages(), record.chosen, record.rejected, record.label) == (
        messages, obj["chosen"], obj["rejected"], obj.get("label", 1.0)
    )


@fuzz(100)
@given(st.lists(fuzzed_line(), min_size=1, max_size=8), st.booleans())
def test_every_fuzzed_line_is_kept_counted_or_located(work, lines, compress):
    path = write_lines(work / ("lines.jsonl.gz" if compress else "lines.jsonl"), [raw for raw, _ in lines], compress)
    expected = {number: outcome for number, (_, outcome) in enumerate(lines, start=1)}
    kept = {n: o[1] for n, o in expected.items() if o != "blank" and o[0] == "keep"}
    bad = {n: o[1:] for n, o in expected.items() if o != "blank" and o[0] == "skip"}

    records, report = data.load_preferences(path, "prompt_pairs", on_error="skip")
    assert report.lines == len(lines) == report.kept + report.num_skipped + report.blank
    assert report.blank == sum(o == "blank" for o in expected.values())
    assert [r.line for r in records] == sorted(kept) and report.kept == len(records)
    assert all(same_record(r, kept[r.line]) for r in records)
    assert report.skipped == collections.Counter(reason for reason, _ in bad.values())

    if not bad:
        assert data.load_preferences(path, "prompt_pairs").records == records
        return
    first = min(bad)
    with pytest.raises(data.DataError) as info:
        data.load_preferences(path, "prompt_pairs")
    error = info.value
    assert (error.path, error.line, (error.reason, error.field)) == (str(path), first, bad[first])
    assert str(error).startswith(f"{path}:{first}: field {error.field!r}: {error.reason}: ")


GOOD = {
    "prompt_pairs": {"prompt": "Pick a number.", "chosen": "Four.", "rejected": "Purple.", "label": 0.9},
    "hh": {"chosen": "\n\nHuman: Hi.\n\nAssistant: Hello!", "rejected": "\n\nHuman: Hi.\n\nAssistant: Go away."},
    "alpaca_eval": {"instruction": "Add 2 and 2.", "output_1": "4", "output_2": "5", "preference": 1.2},
}
NUMBER_FIELDS = {"label", "preference"}


@fuzz(40)
@given(st.sampled_from([(fmt, key) for fmt, obj in GOOD.items() for key in obj]), st.data(), st.booleans())
def test_a_field_of_the_wrong_json_type_is_named(work, fmt_field, draw, detect):
    fmt, key = fmt_field
    value = draw.draw(NOT_NUMBER if key in NUMBER_FIELDS else NOT_STR.filter(lambda v: key != "prompt" or not isinstance(v, list)))
    path = work / "typed.jsonl"
    path.write_text(json.dumps(GOOD[fmt]) + "\n" + json.dumps({**GOOD[fmt], key: value}) + "\n")
    with pytest.raises(data.DataError) as info:
        data.load_preferences(path, None if detect else fmt)
    assert (info.value.line, info.value.reason, info.value.field) == (2, "wrong_type", key)
    records, report = data.load_preferences(path, None if detect else fmt, on_error="skip")
    assert len(records) == 1 and report.skipped == {"wrong_type": 1}


def line_count(raw: bytes) -> int:
    return raw.count(b"\n") + (1 if raw and not raw.endswith(b"\n") else 0)


@fuzz(60)
@given(
    st.one_of(
        st.binary(max_size=600),
        st.lists(st.sampled_from([b"{", b"}", b'"', b":", b",", b"[", b"]", b"\n", b" ", b"chosen", b"prompt",
                                  b"rejected", b"1", b"\\u", b"\xff", b"\\ud800", b"null", b"\x1f\x8b"]),
                 max_size=60).map(b"".join),
    ),
    st.sampled_from([None, *GOOD]),
)
def test_random_bytes_end_in_records_counted_skips_or_a_data_error(work, raw, fmt):
    path = work / "random.bin"
    path.write_bytes(raw)
    try:
        records, report = data.load_preferences(path, fmt, on_error="skip")
    except data.DataError as error:  # only a damaged gzip stream stops a skipping reader
        assert raw.startswith(data.reader.GZIP_MAGIC) and error.reason == "bad_compression"
        assert str(error).startswith(f"{path}:{error.line}: field '<file>': bad_compression: ")
    else:
        assert report.kept == len(records) and report.lines == report.kept + report.num_skipped + report.blank
        if not raw.startswith(data.reader.GZIP_MAGIC):
            assert report.lines == line_count(raw)
    try:
        strict, report = data.load_preferences(path, fmt)
    except data.DataError as error:
        assert error.path == str(path) and error.reason in data.REASONS and 1 <= error.line
    else:
        assert report.num_skipped == 0 and report.kept + report.blank == report.lines


def read_until_error(path: Path, on_error: str):
    """The records a reader yields before it raises, and the ``DataError`` (or None)."""
    records = []
    try:
        for record in data.PreferenceReader(path, "prompt_pairs", on_error=on_error):
            records.append(record)
    except data.DataError as error:
        return records, error
    return records, None


@fuzz(40)
@given(st.lists(good_pair(), min_size=1, max_size=40), st.data(), st.sampled_from(["raise", "skip"]))
def test_a_truncated_gzip_file_raises_at_the_line_it_cuts(work, objs, draw, on_error):
    path = write_lines(work / "cut.jsonl.gz", [json.dumps(o).encode() for o in objs], compress=True)
    whole = path.read_bytes()
    path.write_bytes(whole[: draw.draw(st.integers(len(data.reader.GZIP_MAGIC), len(whole) - 1))])
    records, error = read_until_error(path, on_error)
    assert error is not None and (error.reason, error.field) == ("bad_compression", "<file>")
    assert str(error).startswith(f"{path}:{error.line}: field '<file>': bad_compression: the gzip stream is truncated")
    # Every line before the cut is kept (a cut in the 8-byte trailer raises after the last line).
    assert 1 <= error.line <= len(objs) + 1 and len(records) == error.line - 1
    assert all(same_record(r, o) for r, o in zip(records, objs))


@fuzz(40)
@given(st.lists(good_pair(), min_size=1, max_size=40), st.data())
def test_a_corrupt_gzip_file_raises_or_reads_back_the_same_records(work, objs, draw):
    path = write_lines(work / "flip.jsonl.gz", [json.dumps(o).encode() for o in objs], compress=True)
    whole = bytearray(path.read_bytes())
    at = draw.draw(st.integers(10, len(whole) - 1))  # after the 10-byte header: deflate data and trailer
    whole[at] ^= draw.draw(st.integers(1, 255))
    path.write_bytes(bytes(whole))
    records, error = read_until_error(path, "skip")
    if error is None:  # the flip hit bits that deflate ignores: the stream and its CRC still check out
        assert len(records) == len(objs) and all(same_record(r, o) for r, o in zip(records, objs))
    else:
        assert (error.reason, error.field) == ("bad_compression", "<file>") and str(error).startswith(f"{path}:")


# --------------------------------------------------------------------------------------------
# Model files
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smollm2() -> Path:
    """The real SmolLM2 GGUF (98 MB), found as the loader finds it."""
    try:
        return smollm2_gguf_path()
    except FileNotFoundError as error:
        pytest.skip(str(error))


@fuzz(20)
@given(st.data())
def test_a_truncated_gguf_file_is_named(work, smollm2, draw):
    size = smollm2.stat().st_size
    # Cuts in the header, in the metadata (the token list and merges, the first ~2 MB), anywhere.
    cut = draw.draw(st.one_of(st.integers(0, 64), st.integers(0, 3 * 2**20), st.integers(0, size - 1)))
    path = work / "cut.gguf"
    with open(smollm2, "rb") as whole:
        path.write_bytes(whole.read(cut))
    with pytest.raises(ModelFileError, match="not a readable GGUF file") as info:
        load_gguf(path)
    assert str(info.value).startswith(f"{path}: ") and info.value.source == str(path)


@fuzz(30)
@given(st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=200).map(lambda b: b"GGUF" + (3).to_bytes(4, "little") + b),
))
def test_a_garbage_gguf_file_is_named(work, raw):
    path = work / "garbage.gguf"
    path.write_bytes(raw)
    with pytest.raises(ValueError) as info:  # ModelFileError, or "general.architecture is None" for an empty GGUF
        load_gguf(path)
    assert str(info.value).startswith(f"{path}: ")


CONFIG = {"model_type": "llama", "vocab_size": 4, "hidden_size": 4, "num_hidden_layers": 1,
          "num_attention_heads": 1, "intermediate_size": 4, "head_dim": 4, "tie_word_embeddings": True}
REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
# Optional keys and the kind of value each takes (absent or null: the default).
OPTIONAL = {"num_key_value_heads": "count", "head_dim": "count", "max_position_embeddings": "count",
            "rope_theta": "number", "rms_norm_eps": "number", "tie_word_embeddings": "bool", "rope_scaling": "dict"}


@contextlib.contextmanager
def replaced(path: Path, content: bytes):
    """``path`` holding ``content`` inside the block; what it held before (or its absence) after."""
    before = path.read_bytes() if path.exists() else None
    path.write_bytes(content)
    try:
        yield path
    finally:
        if before is None:
            path.unlink()
        else:
            path.write_bytes(before)


@pytest.fixture(scope="module")
def checkpoint(work) -> Path:
    """A loadable one-layer Hugging Face checkpoint (config.json + model.safetensors)."""
    safetensors = pytest.importorskip("safetensors.numpy")
    directory = work / "hf"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps(CONFIG))
    names = ["model.embed_tokens.weight", "model.norm.weight", *(f"model.layers.0.{s}" for s in LAYER_TENSORS.values())]
    safetensors.save_file({n: np.ones((4,) if "norm" in n else (4, 4), np.float32) for n in names},
                          str(directory / "model.safetensors"))
    assert load_hf(directory).config.num_layers == 1  # the intact checkpoint loads
    return directory


@fuzz(30)
@given(st.data())
def test_a_truncated_or_garbage_safetensors_file_is_named(checkpoint, draw):
    path = checkpoint / "model.safetensors"
    whole = path.read_bytes()
    header = int.from_bytes(whole[:8], "little")
    damaged = draw.draw(st.one_of(
        st.integers(0, len(whole) - 1).map(lambda cut: whole[:cut]),  # truncated
        st.binary(max_size=300),  # garbage
        st.binary(max_size=60).filter(lambda b: b.strip()[:1] != b"{").map(lambda b: len(b).to_bytes(8, "little") + b),
        st.integers(0, header - 1).map(lambda i: whole[: 8 + i] + b"\x00" + whole[9 + i:]),  # broken header JSON
    ))
    with replaced(path, damaged), pytest.raises(ModelFileError, match="not a readable safetensors file") as info:
        load_hf(checkpoint)
    assert str(info.value).startswith(f"{path}: ")


def test_the_sharded_loader_names_a_damaged_safetensors_file(checkpoint):
    path = checkpoint / "model.safetensors"
    whole = path.read_bytes()
    with replaced(path, whole[: len(whole) // 2]), pytest.raises(ModelFileError, match=f"^{path}: not a readable safetensors file"):
        load_hf_sharded(checkpoint, make_mesh(devices=jax.devices()[:1]))


@pytest.mark.parametrize("index, field", [
    (b'{"weight_map": {"model.norm.weight": "model.safetensors"', None),  # truncated
    (b"[1, 2]", None),
    (b'{"metadata": {}}', "weight_map"),
    (b'{"weight_map": ["model.safetensors"]}', "weight_map"),
    (b'{"weight_map": {"model.norm.weight": 3}}', "weight_map"),
])
def test_a_bad_shard_index_names_the_file_and_the_key(checkpoint, index, field):
    path = checkpoint / "model.safetensors.index.json"
    with replaced(path, index), pytest.raises(ModelFileError) as info:
        load_hf(checkpoint)
    assert str(info.value).startswith(f"{path}: ") and info.value.field == field
    assert isinstance(info.value, KeyError) == (index == b'{"metadata": {}}')

def wrong_value(kind: str):
    """JSON values that are not of ``kind`` (nor null, which means "absent" for optional keys)."""
    if kind == "count":
        bad = JSON.filter(lambda v: isinstance(v, bool) or not isinstance(v, int)) | st.integers(-5, 0)
    elif kind == "number":
        bad = NOT_NUMBER | st.integers(400, 500).map(lambda k: 10**k)
    elif kind == "bool":
        bad = JSON.filter(lambda v: not isinstance(v, bool))
    else:
        bad = JSON.filter(lambda v: not isinstance(v, dict))
    return bad.filter(lambda v: v is not None)


@st.composite
def bad_config(draw):
    """``(config.json bytes, the error's field or None, MissingFieldError expected)``."""
    kind = draw(st.sampled_from(["missing", "required_type", "optional_type", "rope_factor", "text", "heads"]))
    config = dict(CONFIG)
    if kind == "missing":
        dropped = draw(st.lists(st.sampled_from(REQUIRED), min_size=1, unique=True))
        return json.dumps({k: v for k, v in config.items() if k not in dropped}).encode(), set(dropped), True
    if kind == "required_type":
        key = draw(st.sampled_from(REQUIRED))
        config[key] = draw(wrong_value("count") | st.none())
        return json.dumps(config).encode(), {key}, False
    if kind == "optional_type":
        key = draw(st.sampled_from(sorted(OPTIONAL)))
        config[key] = draw(wrong_value(OPTIONAL[key]))
        return json.dumps(config).encode(), {key}, False
    if kind == "rope_factor":
        config["rope_scaling"] = {"rope_type": draw(st.sampled_from(["linear", "llama3"])), "factor": draw(wrong_value("number"))}
        return json.dumps(config).encode(), {"factor"}, False
    if kind == "heads":  # well-typed, but the decoder cannot take it
        config.update(num_attention_heads=3, num_key_value_heads=2, hidden_size=12, head_dim=4)
        return json.dumps(config).encode(), {None}, False
    text = json.dumps(config).encode()
    raw = draw(st.one_of(
        st.integers(0, len(text) - 1).map(lambda cut: text[:cut]),
        st.binary(max_size=40).filter(lambda b: not b.strip().startswith(b"{")),
        JSON.filter(lambda v: not isinstance(v, dict)).map(lambda v: json.dumps(v).encode()),
    ))
    return raw, {None}, False


@fuzz(60)
@given(bad_config())
def test_a_bad_config_json_names_the_file_and_the_key(checkpoint, case):
    raw, fields, missing = case
    path = checkpoint / "config.json"
    with replaced(path, raw), pytest.raises(ModelFileError) as info:
        load_hf(checkpoint)
    error = info.value
    assert isinstance(error, MissingFieldError) == missing and isinstance(error, KeyError) == missing
    assert str(error).startswith(f"{path}: ") and error.field in fields
    if error.field is not None:
        assert repr(error.field) in str(error)


@pytest.fixture(scope="module")
def tokenizer_dir(work) -> Path:
    tokenizers = pytest.importorskip("tokenizers")
    directory = work / "tokenizer"
    directory.mkdir()
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel({"<s>": 0, "</s>": 1, "hi": 2}, unk_token="hi"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    backend.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG))
    assert Tokenizer.from_pretrained(directory).eos_id == 1  # the intact directory loads
    return directory


TOKENIZER_CONFIG = {"bos_token": "<s>", "eos_token": "</s>", "chat_template": "{{ messages[0]['content'] }}"}


@fuzz(40)
@given(st.data())
def test_a_bad_tokenizer_directory_names_the_file_and_the_key(tokenizer_dir, draw):
    files = {name: (tokenizer_dir / name).read_bytes() for name in ("tokenizer.json", "tokenizer_config.json")}
    case = draw.draw(st.sampled_from(["tokenizer.json", "config_text", "eos_token", "bos_token", "chat_template"]))
    name, field = ("tokenizer.json", None) if case == "tokenizer.json" else ("tokenizer_config.json", None)
    if case == "tokenizer.json":
        text = files[name].rstrip()
        raw = draw.draw(st.integers(0, len(text) - 1).map(lambda cut: text[:cut]) | st.binary(max_size=40))
    elif case == "config_text":
        raw = draw.draw(st.binary(max_size=40).filter(lambda b: not b.strip().startswith(b"{")))
    else:
        field, not_null = case, NOT_STR.filter(lambda v: v is not None)
        if case == "chat_template":  # not a string, nor a list of {"name", "template"}
            value = draw.draw(not_null.filter(lambda v: not isinstance(v, list))
                              | st.lists(JSON.filter(lambda v: not isinstance(v, dict)), min_size=1, max_size=3)
                              | st.builds(lambda v: [{"name": "default", "template": v}], not_null))
        else:  # a token: neither a string nor {"content": string}
            value = draw.draw(not_null.filter(lambda v: not isinstance(v, dict)) | st.builds(lambda v: {"content": v}, not_null))
        raw = json.dumps({**TOKENIZER_CONFIG, case: value}).encode()
    path = tokenizer_dir / name
    with replaced(path, raw), pytest.raises(ModelFileError) as info:
        Tokenizer.from_pretrained(tokenizer_dir)
    assert str(info.value).startswith(f"{path}: ") and info.value.field == field


@pytest.fixture(scope="module")
def orbax_checkpoint(work):
    """Orbax parameters of the tiny decoder (``save_params``), its files, and the parameters."""
    model = Decoder(get_config("tiny"), rngs=nnx.Rngs(0))
    directory = save_params(model, work / "orbax")
    files = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
    return directory, files, nnx.to_pure_dict(nnx.state(model, nnx.Param))


# Orbax reads the arrays concurrently: after the first read fails, the others' failures are
# reported as unraisable (their coroutines are abandoned); the error raised is what is checked.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@fuzz(12)
@given(st.data())
def test_a_damaged_orbax_checkpoint_is_named_or_reads_back_the_same(orbax_checkpoint, draw):
    directory, files, saved = orbax_checkpoint
    path = directory / draw.draw(st.sampled_from(files))
    whole = path.read_bytes()
    damaged = draw.draw(st.integers(0, max(len(whole) - 1, 0)).map(lambda cut: whole[:cut]) | st.binary(min_size=1, max_size=64))
    abstract = nnx.eval_shape(lambda: Decoder(get_config("tiny"), rngs=nnx.Rngs(0)))
    with replaced(path, damaged):
        try:
            restored = restore_params(abstract, directory)
        except DamagedFileError as error:
            assert str(error).startswith(f"checkpoint {directory} is damaged (")
            return
    # Files that restoring does not read (commit marker, sharding notes, unused copies) may be damaged.
    same = jax.tree.map(np.array_equal, nnx.to_pure_dict(nnx.state(restored, nnx.Param)), saved)
    assert all(jax.tree.leaves(same)), path


def test_the_line_strategy_reaches_every_outcome():
    """Its derandomized examples hold every outcome the fuzzed lines can have (none filtered away)."""
    seen = collections.Counter()

    @fuzz(200)
    @given(fuzzed_line())
    def collect(case):
        raw, outcome = case
        seen["blank" if outcome == "blank" else outcome[0] if outcome[0] == "keep" else outcome[1]] += 1
        seen["huge line"] += outcome != "blank" and outcome[0] == "keep" and len(raw) >= 2**16
        seen["deep nesting"] += b"[" * 5000 in raw
        seen["4400+ digits"] += b"7" * 4400 in raw

    collect()
    assert min(seen["huge line"], seen["deep nesting"], seen["4400+ digits"]) > 0, seen
    seen = {k for k, n in seen.items() if n and k not in ("huge line", "deep nesting", "4400+ digits")}
    # bad_compression is a file's (the gzip tests), context_mismatch an hh dialogue's.
    assert seen == {"keep", "blank", *data.REASONS} - {"bad_compression", "context_mismatch"}


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("name", ["_METADATA", "_CHECKPOINT_METADATA", "_sharding", "array_metadatas/process_0"])
def test_an_orbax_metadata_file_that_is_not_text_is_named(orbax_checkpoint, name):
    """Each JSON metadata file made non-UTF-8. The fuzzed file list above holds random names, so a
    draw lands on different files from run to run; one CI run's draw found ``_METADATA`` this way."""
    directory, files, saved = orbax_checkpoint
    abstract = nnx.eval_shape(lambda: Decoder(get_config("tiny"), rngs=nnx.Rngs(0)))
    with replaced(directory / name, b"\x80"):
        try:
            restored = restore_params(abstract, directory)
        except DamagedFileError as error:
            assert str(error).startswith(f"checkpoint {directory} is damaged (")
            return
    same = jax.tree.map(np.array_equal, nnx.to_pure_dict(nnx.state(restored, nnx.Param)), saved)
    assert all(jax.tree.leaves(same)), name
