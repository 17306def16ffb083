"""Deterministic hash splits: stable, disjoint, close to the fractions, grouped by context."""

import subprocess
import sys

import pytest

from alignment import data


def record(prompt, chosen="yes", rejected="no"):
    return data.PreferenceRecord((data.Message("user", prompt),), chosen, rejected)


RECORDS = [record(f"question {i}", f"answer {i}") for i in range(20_000)]


def test_fractions_disjoint_and_complete():
    groups = data.split_records(RECORDS)
    assert list(groups) == list(data.DEFAULT_SPLITS)
    assert sum(len(g) for g in groups.values()) == len(RECORDS)
    assert len({id(r) for g in groups.values() for r in g}) == len(RECORDS)
    for name, fraction in data.DEFAULT_SPLITS.items():
        assert len(groups[name]) / len(RECORDS) == pytest.approx(fraction, abs=0.01)
    assert list(data.filter_split(RECORDS, "eval")) == groups["eval"]


def test_same_context_same_split_and_salt_changes_assignment():
    same = [record("shared prompt", f"answer {i}", f"other {i}") for i in range(50)]
    assert len({data.assign_split(r.context_key()) for r in same}) == 1
    multi = [data.Message("user", "a"), data.Message("assistant", "b"), data.Message("user", "c")]
    assert data.PreferenceRecord(tuple(multi), "x", "y").context_key() != record("a b c").context_key()
    salted = [data.assign_split(r.context_key(), salt="v2") for r in RECORDS[:2000]]
    plain = [data.assign_split(r.context_key()) for r in RECORDS[:2000]]
    assert 0.2 < sum(a != b for a, b in zip(salted, plain)) / 2000 < 0.8


def test_stable_across_processes():
    """The hash does not depend on the interpreter's string-hash randomisation."""
    code = "from alignment.data import splits; print(splits.unit_hash('question 7'), splits.unit_hash('q', 's'))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code], env={"PYTHONHASHSEED": seed}, capture_output=True, text=True, check=True
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1
    assert outputs.pop().split()[0] == repr(data.splits.unit_hash("question 7"))


@pytest.mark.parametrize("fractions", [{"a": 0.5, "b": 0.4}, {"a": 1.2, "b": -0.2}, {}])
def test_invalid_fractions(fractions):
    with pytest.raises(ValueError, match="fractions"):
        data.assign_split("x", fractions)


def test_unknown_split_name():
    with pytest.raises(KeyError, match="valid splits"):
        data.filter_split(RECORDS, "train")
