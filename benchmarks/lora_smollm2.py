"""Full fine-tuning against LoRA in one RLOO step on SmolLM2-135M, ours (JAX) and TRL + peft.

    python benchmarks/lora_smollm2.py [--rank 16] [--repeats 2] [rl_step_smollm2.py options ...]

Runs ``benchmarks/rl_step_smollm2.py`` four times, each in a process of its own so that its peak
resident memory is its own: ours with full fine-tuning, TRL with full fine-tuning, ours with
rank-``--rank`` LoRA, TRL with the same LoRA through ``peft`` (all seven projections of every
layer, alpha = 2 rank, see that benchmark's docstring for the step both sides take). Each
process loads both frameworks' copies of the weights (to check that they agree), so the peak
memory of every process includes about 1.1 GB of weights the other side holds; the bytes of
each side's own policy, reference and optimizer state are printed next to it. Prints per
configuration the median seconds per step and its split, the peak memory and the state bytes,
then the ratios full / LoRA on each side and TRL / ours in each mode.

Time: on an idle 2-core machine it takes about 25 minutes at the defaults (each process loads
for ~40 s and compiles or warms up for ~1-2 minutes before its ``--repeats`` timed steps). The
processes run one after another, not alternating as in ``rl_step_smollm2.py``: run it on a
quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = (("ours", 0), ("trl", 0), ("ours", None), ("trl", None))  # None: --rank
PHASES = ("sample", "score", "reference", "old logps", "update")


def run(side: str, rank: int, repeats: int, extra: list[str], workdir: str) -> dict:
    path = os.path.join(workdir, f"{side}-{rank}.json")
    command = [sys.executable, os.path.join(HERE, "rl_step_smollm2.py"), "--side", side, "--lora", str(rank),
               "--repeats", str(repeats), "--json", path, *extra]
    print(f"$ {' '.join(command[1:])}", flush=True)
    subprocess.run(command, check=True)
    with open(path) as f:
        return json.load(f)


def summary(record: dict) -> dict:
    side = record["side"]
    steps = record[f"{side}_steps"]
    return {"step": statistics.median(s["step"] for s in steps),
            **{p: statistics.median(s[p] for s in steps) for p in PHASES if all(p in s for s in steps)},
            "peak_gb": record["peak_rss_gb"], "state_gb": record[f"{side}_state_bytes"] / 1e9}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rank", type=int, default=16, help="the LoRA rank (alpha = 2 rank)")
    parser.add_argument("--repeats", type=int, default=2, help="timed steps per process, after one warm-up")
    args, extra = parser.parse_known_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="lora_smollm2_") as workdir:
        for side, rank in RUNS:
            rank = args.rank if rank is None else rank
            results[side, rank] = summary(run(side, rank, args.repeats, extra, workdir))
    print(f"\nRLOO step on SmolLM2-135M, float32, median of {args.repeats} steps per process")
    print(f"{'':24} {'s/step':>7} {'peak GB':>8} {'state GB':>9}  split (s)")
    for (side, rank), r in results.items():
        name = f"{'ours (JAX)' if side == 'ours' else 'TRL'} {'LoRA r=' + str(rank) if rank else 'full'}"
        split = ", ".join(f"{p} {r[p]:.2f}" for p in PHASES if p in r)
        print(f"{name:24} {r['step']:7.2f} {r['peak_gb']:8.2f} {r['state_gb']:9.3f}  {split}")
    for side in ("ours", "trl"):
        full, low = results[side, 0], results[side, args.rank]
        print(f"{side}: full / LoRA step time {full['step'] / low['step']:.2f}x, peak memory {full['peak_gb'] - low['peak_gb']:+.2f} GB "
              f"saved by LoRA, state {full['state_gb'] / low['state_gb']:.1f}x smaller")
    for rank in (0, args.rank):
        ratio = results["trl", rank]["step"] / results["ours", rank]["step"]
        print(f"TRL / ours, {'LoRA' if rank else 'full'}: {ratio:.2f}x step time")


if __name__ == "__main__":
    main()
