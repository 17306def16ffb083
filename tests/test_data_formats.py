"""Parsing real and synthetic preference files: HH-RLHF, AlpacaEval pairs, plain prompt pairs."""

import gzip
import json

import pytest

from alignment import data
from alignment.data.formats import hh, prompt_pairs

HH = "hh-rlhf/harmless-base-test.jsonl.gz"
ALPACA = "alpaca-eval-prefs/pairs.jsonl.gz"


def raw_rows(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def hh_loaded(shared_data):
    return data.load_preferences(shared_data / HH, "hh", allow_empty_responses=True), raw_rows(shared_data / HH)


def test_hh_all_pairs_parse_and_reconstruct(hh_loaded):
    (records, report), rows = hh_loaded
    assert len(records) == len(rows) == 2312 and report.kept == 2312 and report.num_skipped == 0
    for record, row in zip(records, rows):
        assert hh.format_dialogue(record.context, record.chosen) == row["chosen"]
        assert hh.format_dialogue(record.context, record.rejected) == row["rejected"]
        assert record.chosen != record.rejected
        assert record.context[0].role == "user" and record.context[-1].role == "user"
        assert all(a.role != b.role or a.role == "assistant" for a, b in zip(record.context, record.context[1:]))
        assert "\n\nHuman:" not in record.chosen and "\n\nHuman:" not in record.rejected
        assert record.property == "harmless" and record.label == 1.0 and record.source.endswith(HH)
    assert [r.line for r in records] == list(range(1, 2313))


def test_hh_structure_facts(hh_loaded):
    (records, _), rows = hh_loaded
    non_alternating = [r for r in records if any(a.role == b.role for a, b in zip(r.context, r.context[1:]))]
    assert len(non_alternating) <= 5  # the raw data has a few assistant turns in a row; kept unmerged
    # Every context ends at the last assistant marker except where a response continues the dialogue.
    for record, row in zip(records, rows):
        cut = len(hh.format_dialogue(record.context, "")) - len("\n\nAssistant: ")
        if "\n\nAssistant:" not in record.chosen + record.rejected:
            assert cut == row["chosen"].rfind("\n\nAssistant:") == row["rejected"].rfind("\n\nAssistant:")
    assert max(len(r.context) for r in records) > 10 and min(len(r.context) for r in records) == 1


def test_hh_empty_responses_are_counted_by_default(shared_data):
    reader = data.PreferenceReader(shared_data / HH, on_error="skip")
    kept = sum(1 for _ in reader)
    assert reader.report.format == "hh"  # detected
    assert dict(reader.report.skipped) == {"empty_response": 2312 - kept} and 0 < 2312 - kept < 10
    with pytest.raises(data.DataError, match=r"harmless-base-test.jsonl.gz:\d+: field 'chosen': empty_response"):
        list(data.PreferenceReader(shared_data / HH))


def test_alpaca_eval_all_rows_parse_with_oriented_soft_labels(shared_data):
    records, report = data.load_preferences(shared_data / ALPACA, allow_identical_responses=True)
    rows = raw_rows(shared_data / ALPACA)
    assert report.format == "alpaca_eval" and len(records) == len(rows) == 12075
    for record, row in zip(records, rows):
        p2 = row["preference"] - 1
        assert 0.5 <= record.label <= 1.0 and record.property == "helpful"
        assert record.context == (data.Message("user", row["instruction"]),)
        if p2 <= 0.5:
            assert (record.chosen, record.rejected, record.label) == (
                row["output_1"],
                row["output_2"],
                pytest.approx(1 - p2),
            )
        else:
            assert (record.chosen, record.rejected, record.label) == (
                row["output_2"],
                row["output_1"],
                pytest.approx(p2),
            )
    ties = sum(r.label == 0.5 for r in records)
    assert ties == sum(row["preference"] == 1.5 for row in rows) > 0


def test_alpaca_eval_identical_outputs_are_counted(shared_data):
    reader = data.PreferenceReader(shared_data / ALPACA, "alpaca_eval", on_error="skip")
    kept = list(reader)
    identical = sum(row["output_1"].strip() == row["output_2"].strip() for row in raw_rows(shared_data / ALPACA))
    assert dict(reader.report.skipped) == {"identical_responses": identical}
    assert len(kept) + identical == 12075


def write_jsonl(path, rows, compress=False):
    text = "".join(json.dumps(row) + "\n" for row in rows).encode()
    path.write_bytes(gzip.compress(text) if compress else text)
    return path


def test_compression_is_detected_by_magic_bytes(tmp_path):
    rows = [{"prompt": "Say hi.", "chosen": "Hi!", "rejected": "No."}]
    for name, compress in [("plain.jsonl.gz", False), ("packed.jsonl", True), ("noext", True)]:
        (record,) = data.load_preferences(write_jsonl(tmp_path / name, rows, compress)).records
        assert (record.chosen, record.rejected, record.label, record.line) == ("Hi!", "No.", 1.0, 1)


def test_prompt_pairs_messages_labels_and_round_trip(tmp_path):
    records = [
        data.PreferenceRecord((data.Message("user", "Name a colour."),), "Blue.", "Seven.", 0.8, "helpful"),
        data.PreferenceRecord(
            (
                data.Message("system", "Be brief."),
                data.Message("user", "Hi"),
                data.Message("assistant", "Hello."),
                data.Message("user", "Bye"),
            ),
            "Goodbye.",
            "",
            1.0,
            "helpful",
        ),
    ]
    path = write_jsonl(tmp_path / "pairs.jsonl", [prompt_pairs.to_json(r) for r in records])
    loaded, report = data.load_preferences(path, property="helpful", allow_empty_responses=True)
    assert report.format == "prompt_pairs"
    assert [(r.context, r.chosen, r.rejected, r.label, r.property) for r in loaded] == [
        (r.context, r.chosen, r.rejected, r.label, r.property) for r in records
    ]


def test_registry_names_and_detection():
    assert {"hh", "alpaca_eval", "prompt_pairs"} <= set(data.FORMATS)
    with pytest.raises(KeyError, match="valid formats: .*'hh'"):
        data.get_format("nope")
    with pytest.raises(ValueError, match="already registered"):
        data.register_format(data.get_format("hh"))
    assert data.detect_format({"prompt": "", "chosen": "", "rejected": ""}).name == "prompt_pairs"
    assert data.detect_format({"chosen": "", "rejected": ""}).name == "hh"
    assert (
        data.detect_format({"instruction": "", "output_1": "", "output_2": "", "preference": 1}).name == "alpaca_eval"
    )
    assert data.detect_format({"text": ""}) is None


def test_every_format_documents_its_fields():
    """``Format.doc`` and the ``alignment.data.formats`` docstring describe every field of every format."""
    from alignment.data import formats

    assert "prompt_pairs" in data.FORMATS
    for name, fmt in data.FORMATS.items():
        documented = {line.split(":")[0] for line in fmt.doc.splitlines()}
        for field in fmt.fields:
            assert any(field in d for d in documented), (name, field, fmt.doc)
            assert f"``{field}``" in formats.__doc__, (name, field)
        assert f"``{name}``" in formats.__doc__
