"""Bad input: every kind of malformed line raises a located DataError, or is skipped and counted."""

import collections
import json
import logging

import pytest

from alignment import data

GOOD_PAIR = {"prompt": "Pick a number.", "chosen": "Four.", "rejected": "Purple."}
GOOD_HH = {
    "chosen": "\n\nHuman: Hi there.\n\nAssistant: Hello!",
    "rejected": "\n\nHuman: Hi there.\n\nAssistant: Go away.",
}
GOOD_ALPACA = {"instruction": "Add 2 and 2.", "output_1": "4", "output_2": "5", "preference": 1.2}

# (format, raw line, reason, field)
BAD_LINES = [
    ("prompt_pairs", b'{"prompt": "x", ', "malformed_json", "<line>"),
    ("prompt_pairs", b"[1, 2]", "malformed_json", "<line>"),
    ("prompt_pairs", b'{"prompt": "\xff\xfe", "chosen": "a", "rejected": "b"}', "bad_encoding", "<line>"),
    ("prompt_pairs", {"prompt": "x", "chosen": "a"}, "missing_field", "rejected"),
    ("prompt_pairs", {**GOOD_PAIR, "chosen": 3}, "wrong_type", "chosen"),
    ("prompt_pairs", {**GOOD_PAIR, "label": 1.5}, "out_of_range", "label"),
    ("prompt_pairs", {**GOOD_PAIR, "label": True}, "wrong_type", "label"),
    ("prompt_pairs", {**GOOD_PAIR, "prompt": [{"role": "robot", "content": "x"}]}, "out_of_range", "prompt[0].role"),
    (
        "prompt_pairs",
        {**GOOD_PAIR, "prompt": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]},
        "bad_dialogue",
        "prompt",
    ),
    ("prompt_pairs", {**GOOD_PAIR, "prompt": []}, "wrong_type", "prompt"),
    ("prompt_pairs", {**GOOD_PAIR, "chosen": "  \n"}, "empty_response", "chosen"),
    ("prompt_pairs", {**GOOD_PAIR, "rejected": ""}, "empty_response", "rejected"),
    ("prompt_pairs", {**GOOD_PAIR, "rejected": "Four. "}, "identical_responses", "rejected"),
    ("hh", {"chosen": GOOD_HH["chosen"]}, "missing_field", "rejected"),
    ("hh", {**GOOD_HH, "rejected": None}, "wrong_type", "rejected"),
    ("hh", {**GOOD_HH, "rejected": "\n\nHuman: Bye.\n\nAssistant: Go away."}, "context_mismatch", "rejected"),
    ("hh", {**GOOD_HH, "chosen": "\n\nHuman: Hi there. Hello!"}, "bad_dialogue", "chosen"),
    ("hh", {"chosen": "Hi.\n\nAssistant: A", "rejected": "Hi.\n\nAssistant: B"}, "bad_dialogue", "chosen"),
    (
        "hh",
        {
            "chosen": "\n\nHuman: Hi.\n\nAssistant: Sure.\n\nAssistant: A",
            "rejected": "\n\nHuman: Hi.\n\nAssistant: Sure.\n\nAssistant: B",
        },
        "bad_dialogue",
        "chosen",
    ),
    ("hh", {**GOOD_HH, "rejected": GOOD_HH["chosen"]}, "identical_responses", "rejected"),
    ("alpaca_eval", {**GOOD_ALPACA, "preference": 2.5}, "out_of_range", "preference"),
    ("alpaca_eval", {**GOOD_ALPACA, "preference": float("nan")}, "out_of_range", "preference"),
    ("alpaca_eval", {**GOOD_ALPACA, "preference": "1"}, "wrong_type", "preference"),
    ("alpaca_eval", {k: v for k, v in GOOD_ALPACA.items() if k != "output_2"}, "missing_field", "output_2"),
]
GOOD = {"prompt_pairs": GOOD_PAIR, "hh": GOOD_HH, "alpaca_eval": GOOD_ALPACA}


def encode(line):
    return line if isinstance(line, bytes) else json.dumps(line).encode()


def write(path, lines):
    path.write_bytes(b"".join(encode(line) + b"\n" for line in lines))
    return path


@pytest.mark.parametrize("fmt, line, reason, field", BAD_LINES)
def test_bad_line_raises_located_error(tmp_path, fmt, line, reason, field):
    path = write(tmp_path / "bad.jsonl", [GOOD[fmt], b"", line])
    with pytest.raises(data.DataError) as info:
        data.load_preferences(path, fmt)
    error = info.value
    assert (error.path, error.line, error.reason, error.field) == (str(path), 3, reason, field)
    assert f"{path}:3: field {field!r}: {reason}:" in str(error)


def test_skip_mode_counts_every_reason_and_logs(tmp_path, caplog):
    lines = [GOOD["prompt_pairs"]] + [line for fmt, line, _, _ in BAD_LINES if fmt == "prompt_pairs"] + [b"  "]
    path = write(tmp_path / "mixed.jsonl", lines)
    with caplog.at_level(logging.WARNING, logger="alignment.data.errors"):
        records, report = data.load_preferences(path, "prompt_pairs", on_error="skip")
    expected = collections.Counter(reason for fmt, _, reason, _ in BAD_LINES if fmt == "prompt_pairs")
    assert len(records) == report.kept == 1 and report.blank == 1 and report.lines == len(lines)
    assert report.skipped == expected and report.num_skipped == len(lines) - 2
    assert report.examples["empty_response"] == [12, 13]
    assert "mixed.jsonl [prompt_pairs]: 1 records" in caplog.text and "empty_response=2 (lines 12, 13)" in caplog.text


def test_allow_flags_keep_empty_and_identical(tmp_path):
    path = write(tmp_path / "p.jsonl", [{**GOOD_PAIR, "chosen": ""}, {**GOOD_PAIR, "rejected": "Four."}])
    records, _ = data.load_preferences(path, allow_empty_responses=True, allow_identical_responses=True)
    assert [(r.chosen, r.rejected) for r in records] == [("", "Purple."), ("Four.", "Four.")]


def test_undetectable_format_and_bad_options(tmp_path):
    path = write(tmp_path / "x.jsonl", [b"", {"text": "hello"}])
    with pytest.raises(
        data.DataError, match=r"x.jsonl:2: field '<line>': missing_field: keys \['text'\] match no known"
    ):
        data.load_preferences(path)
    with pytest.raises(ValueError, match="on_error must be one of"):
        data.PreferenceReader(path, on_error="ignore")
    with pytest.raises(KeyError, match="valid formats"):
        data.PreferenceReader(path, "csv")


def test_record_invariants():
    with pytest.raises(ValueError, match="role must be one of"):
        data.Message("bot", "x")
    with pytest.raises(ValueError, match="end with a user turn"):
        data.PreferenceRecord((data.Message("assistant", "x"),), "a", "b")
    with pytest.raises(ValueError, match="label must be a probability"):
        data.PreferenceRecord((data.Message("user", "x"),), "a", "b", label=1.2)
