"""A paper-style grid of learner runs with programs of their own against shared ones.

    python benchmarks/shared_programs.py [--steps 4] [--runs 20]

The grid is ``configs.experiments.paper_regime``'s 20 runs (LSC and raw helpfulness, LSC AND,
the raw sum and the group-normalised sum, three seeds each, and the r_ref sweep), each shortened
to ``--steps`` RLOO steps judged at the middle and the last step, on 32 held-out prompts x 2
samples. Each mode runs the whole grid in a process of its own with a fresh JAX persistent
compilation cache (as the launcher uses one): ``own`` forgets the shared programs before each
run (``alignment.rl.compiled.SHARED.clear()``: every learner traces, lowers and compiles its own,
the code before the programs were shared; the persistent cache still serves XLA's compilations
from the second run on), ``shared`` keeps them. The stages before the runs (task, proxies,
reference rewards, pi_0's judging) run untimed first; then the grid's wall time and the seconds
JAX spent tracing, lowering to MLIR and compiling (or reading the persistent cache), from
``jax.monitoring``'s events, are printed, and every run's logged metrics (timings aside) and
judged checkpoints are compared between the modes: they must be equal, float for float.

Time: it takes about 10 minutes on a 2-core CPU once the sandbox is cached (the proxies are trained on
first use, a few minutes more).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # configs/


def grid(steps: int, num_runs: int):
    import fiddle as fdl

    from configs import experiments

    config = experiments.paper_regime()
    config.learner.num_steps = steps
    config.evaluation.steps = (steps // 2, steps)
    config.evaluation.base_samples = 2
    config.task.eval_prompts = 32
    config.task.eval_samples = 2
    config.best_of_k = None
    config.gpm_checks = False
    experiment = fdl.build(config)
    return experiment, experiment.learner_runs()[:num_runs]


def run_mode(args) -> dict:
    """One mode's grid in this process; returns its timings and results."""
    import jax

    from alignment.experiment.compilation import COMPILE_EVENTS, use_compilation_cache
    from alignment.experiment.runner import Pipeline
    from alignment.rl import compiled

    use_compilation_cache(tempfile.mkdtemp(prefix=f"shared-programs-{args.mode}-jax-"))
    experiment, runs = grid(args.steps, args.runs)
    workdir = Path(tempfile.mkdtemp(prefix=f"shared-programs-{args.mode}-"))
    pipeline = Pipeline(experiment, workdir, progress=False)
    _ = pipeline.task, pipeline.proxies, pipeline.base_rewards, pipeline.eval_base_rewards, pipeline.pi_0

    seconds = dict.fromkeys(COMPILE_EVENTS, 0.0)
    names = {event: name for name, event in COMPILE_EVENTS.items()}

    def listen(event: str, duration: float, **_) -> None:
        if event in names:
            seconds[names[event]] += duration

    jax.monitoring.register_event_duration_secs_listener(listen)
    start = time.perf_counter()
    per_run = []
    for run in runs:
        if args.mode == "own":
            compiled.SHARED.clear()
        mark = time.perf_counter()
        pipeline.align(run)
        per_run.append(time.perf_counter() - mark)
    wall = time.perf_counter() - start
    results = {}
    for run in runs:
        directory = workdir / "runs" / run.name
        history = [{k: v for k, v in json.loads(line).items() if not k.startswith("time/") and k != "tokens_per_second"}
                   for line in (directory / "metrics.jsonl").read_text().splitlines()]
        results[run.name] = {"history": history, "evaluations": json.loads((directory / "evaluations.json").read_text())}
    return {"mode": args.mode, "wall": wall, "per_run": per_run, "seconds": seconds, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4, help="RLOO steps per run")
    parser.add_argument("--runs", type=int, default=20, help="the first N runs of the grid")
    parser.add_argument("--mode", choices=("own", "shared"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode is not None:
        args.out.write_text(json.dumps(run_mode(args)))
        return

    measured = {}
    for mode in ("own", "shared"):
        out = Path(tempfile.mkdtemp()) / f"{mode}.json"
        subprocess.run([sys.executable, __file__, "--mode", mode, "--out", str(out), "--steps", str(args.steps), "--runs", str(args.runs)],
                       check=True, cwd=ROOT)
        measured[mode] = json.loads(out.read_text())
    print(f"\n{args.runs} runs of {args.steps} RLOO steps, each judged twice:")
    print(f"{'programs':<10}{'grid s':>9}{'first run s':>13}{'later runs s':>14}{'trace s':>9}{'lower s':>9}{'compile s':>11}")
    for mode, m in measured.items():
        later = sum(m["per_run"][1:]) / max(len(m["per_run"]) - 1, 1)
        s = m["seconds"]
        print(f"{mode:<10}{m['wall']:>9.1f}{m['per_run'][0]:>13.1f}{later:>14.1f}{s['trace']:>9.1f}{s['lower']:>9.1f}{s['compile']:>11.1f}")
    own, shared = measured["own"], measured["shared"]
    share = {mode: sum(m["seconds"].values()) / m["wall"] for mode, m in measured.items()}
    print(f"shared / own: {own['wall'] / shared['wall']:.2f}x faster; tracing + lowering + compiling "
          f"{share['own']:.0%} of the grid with programs of their own, {share['shared']:.0%} shared")
    equal = own["results"] == shared["results"]
    print(f"every run's metrics and judged checkpoints equal: {equal}")
    if not equal:
        different = [name for name in own["results"] if own["results"][name] != shared["results"].get(name)]
        raise SystemExit(f"results differ for {different}")


if __name__ == "__main__":
    main()
