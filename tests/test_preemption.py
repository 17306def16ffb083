"""The whole job under SIGTERM: ``alignment-train`` keeps the signal from its start, the learner
stops before its next step with a checkpoint, the command exits with 143 and a line saying so,
and the same command again finishes. Here the checkpoint is damaged before the restart, which
names it and starts the run over. (That a resumed learner continues exactly, and
restores the previous checkpoint when the latest is damaged, is tests/test_rl_learner.py's.)"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN = "lsc_and-rloo-kl0.2"


def _command(workdir: Path, cache: Path) -> list[str]:
    return [sys.executable, str(ROOT / "launch" / "train.py"), "--sandbox_cache", str(cache), "--noprogress",
            "--config", "config:smoke", "--workdir", str(workdir)]


def test_sigterm_saves_the_learner_and_the_same_command_resumes_or_starts_over(box, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cache = box.directory.parent
    job = subprocess.Popen(_command(tmp_path, cache), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in job.stdout:  # the first stage line: the handler is in place by then
        lines.append(line)
        if line.startswith("[experiment] task"):
            job.send_signal(signal.SIGTERM)
            break
    lines += job.stdout.readlines()
    assert job.wait(timeout=600) == 143, "".join(lines)[-3000:]
    output = "".join(lines)
    assert "[experiment] preempted: the learner stopped on SIGTERM after step 0; a checkpoint was saved there" in output
    assert (tmp_path / "runs" / RUN / "checkpoints").is_dir() and not (tmp_path / "report").exists()

    for path in (tmp_path / "runs" / RUN / "checkpoints" / "0" / "state").rglob("*"):
        if path.is_file():  # truncated, as by a disk that filled up
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    again = subprocess.run(_command(tmp_path, cache), capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "checkpoints restores: step 0 (" in again.stdout and f"run {RUN} starts over" in again.stdout, again.stdout[-3000:]
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert [c["step"] for c in results["runs"][0]["checkpoints"]] == [1, 2]
