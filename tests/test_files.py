"""Kept files are replaced atomically, and a damaged one is named, not a bare JSONDecodeError."""

import errno
import json
import os

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
    from alignment.experiment.results import read_history

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.4}\n{"step": 3, "lo')
    assert [r["step"] for r in read_history(path)] == [1, 2]
    assert "metrics.jsonl:3: an incomplete last line (a write cut off) is left out" in capsys.readouterr().out
    path.write_text('{"step": 1, "lo\n{"step": 2, "loss": 0.4}\n')
    with pytest.raises(files.DamagedFileError, match="metrics.jsonl:1 is damaged"):
        read_history(path)


def test_steps_logged_again_after_a_resume_count_once_the_later_record_kept(tmp_path):
    """A run killed after logging step 3 but checkpointed at step 2 logs step 3 again when it
    resumes: the summary must see step 3 once, as the resumed run logged it."""
    from alignment.experiment.results import read_history, training_summary

    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(f'{{"step": {s}, "loss": {v}}}\n' for s, v in ((1, 0.5), (2, 0.4), (3, 9.0), (3, 0.3))))
    history = read_history(path)
    assert [(r["step"], r["loss"]) for r in history] == [(1, 0.5), (2, 0.4), (3, 0.3)]
    assert training_summary(history) == pytest.approx({"loss": 0.4})


def test_a_result_file_missing_fields_is_named_as_damaged(tmp_path):
    from alignment.experiment.results import RunResult

    with pytest.raises(files.DamagedFileError, match=r"result.json lacks the fields \['checkpoints'\] of a run result"):
        RunResult.from_dict({f: None for f in ("name", "label", "transform", "aggregator", "normalize", "algorithm", "kl_coef",
                                                "seed", "optimised", "reference", "reward_model", "training")},
                            tmp_path / "result.json")


def test_a_failed_write_names_the_file_and_leaves_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    files.write_json(path, {"step": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(files.WriteError, match=f"cannot write the file to {path}: No space left on device; free space and run"):
        files.write_json(path, {"step": 2})
    assert files.read_json(path) == {"step": 1} and sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]
    monkeypatch.undo()
    with pytest.raises(files.WriteError, match=f"cannot write the file to {path}/x.json"):  # a path through a file
        files.write_json(path / "x.json", {})


def test_a_metrics_log_cut_off_mid_line_is_mended_before_appending(tmp_path):
    from alignment.training.metrics import MetricsWriter

    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "lo')
    writer = MetricsWriter(tmp_path)
    writer.write(2, {"loss": 0.4})
    writer.close()
    assert [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [
        {"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.4}]
