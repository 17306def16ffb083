"""launch/smollm2_reward_models.py: where it finds its data, and how it fails on bad input.

The reward models themselves take about 40 minutes (README, "Reward models on real text"); here
only the checks that run before the model is loaded.
"""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("smollm2_reward_models", ROOT / "launch" / "smollm2_reward_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_data_directory_follows_the_environment(script, monkeypatch, tmp_path):
    monkeypatch.setenv("ALIGNMENT_SHARED_DATA", str(tmp_path))
    assert script.default_data_dir() == tmp_path
    monkeypatch.delenv("ALIGNMENT_SHARED_DATA")
    assert script.default_data_dir() == ROOT.parent / "shared" / "data"


def test_missing_data_fails_clearly_before_loading_and_writes_nothing(script, monkeypatch, tmp_path, capsys):
    loaded = []
    monkeypatch.setattr(script, "load_smollm2", lambda *a, **k: loaded.append(1))
    monkeypatch.setenv("ALIGNMENT_SHARED_DATA", str(tmp_path / "nowhere"))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--out", str(out)])
    assert exit_info.value.code == 2 and not loaded and not out.exists()
    error = capsys.readouterr().err
    assert "input file(s) not found" in error and str(tmp_path / "nowhere" / "hh-rlhf") in error
    assert "Traceback" not in error


def test_bad_numbers_fail_before_loading(script, monkeypatch, tmp_path, capsys, shared_data):
    monkeypatch.setattr(script, "load_smollm2", lambda *a, **k: pytest.fail("loaded the model"))
    with pytest.raises(SystemExit):
        script.main(["--data", str(shared_data), "--train-pairs", "0", "--out", str(tmp_path / "out")])
    assert "--train-pairs must be at least 1" in capsys.readouterr().err and not (tmp_path / "out").exists()
