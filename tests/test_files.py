"""Kept files are replaced atomically, and a damaged one is named, not a bare JSONDecodeError."""

import json

import numpy as np
import pytest

from alignment import files


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "result.json"
    files.write_json(path, {"step": 1, "loss": np.float32(0.5), "curve": np.arange(3)})
    assert json.loads(path.read_text()) == {"step": 1, "loss": 0.5, "curve": [0, 1, 2]}
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        files.write_json(path, {"step": 2, "bad": object()})
    assert json.loads(path.read_text())["step"] == 1 and [p.name for p in tmp_path.iterdir()] == ["result.json"]
    with pytest.raises(RuntimeError):
        with files.atomic_write(tmp_path / "arrays.npz", "wb") as out:
            np.savez(out, x=np.ones(3))
            raise RuntimeError("killed mid-write")
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]
    files.write_npz(tmp_path / "arrays.npz", x=np.ones(3))
    np.testing.assert_array_equal(np.load(tmp_path / "arrays.npz")["x"], np.ones(3))


def test_a_damaged_json_file_is_named(tmp_path):
    path = tmp_path / "evaluations.json"
    path.write_text('[{"step": 1, "win')
    with pytest.raises(files.DamagedFileError, match=f"{path} is damaged \\(truncated or not JSON"):
        files.read_json(path)
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(files.DamagedFileError, match="is damaged"):
        files.read_json(path)


def test_a_metrics_log_cut_off_mid_line_loses_only_that_line(tmp_path, capsys):
    from alignment.experiment.runner import _history

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.4}\n{"step": 3, "lo')
    assert [r["step"] for r in _history(path)] == [1, 2]
    assert "metrics.jsonl:3: an incomplete last line (a write cut off) is left out" in capsys.readouterr().out
    path.write_text('{"step": 1, "lo\n{"step": 2, "loss": 0.4}\n')
    with pytest.raises(files.DamagedFileError, match="metrics.jsonl:1 is damaged"):
        _history(path)
