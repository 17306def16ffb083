"""One RLOO learner step on SmolLM2-135M: our JAX learner (``alignment.rl``) vs TRL's ``RLOOTrainer``.

    python benchmarks/rl_step_smollm2.py [--prompts 8] [--samples 4] [--prompt-length 64] [--new-tokens 64]
                                         [--kl-coef 0.05] [--learning-rate 1e-6] [--repeats 3]
                                         [--torch-threads N] [--side both|ours|trl] [--lora RANK]
                                         [--json PATH]

Both sides start from the same dequantized GGUF weights (``load_both`` of
``benchmarks/sampling_smollm2.py``) in float32 on the CPU: the policy, a frozen reference policy,
and a reward model = the same backbone with a scalar head drawn from ``--head-seed`` (TRL:
``LlamaForSequenceClassification(num_labels=1)``, bias-free ``score``; ours:
``alignment.models.heads.RewardModel`` holding the same weights and a zero bias). A step is
``--prompts`` chat-templated prompts of exactly ``--prompt-length`` tokens (SmolLM2's ChatML with
its default system message), ``--samples`` responses each of exactly ``--new-tokens`` tokens
(``min_new_tokens = max_new_tokens``: no EOS stop) at temperature 1 (no top-k/top-p), one reward
per response, reference log-probs for a KL penalty (``--kl-coef``), the RLOO (leave-one-out)
advantage, and one AdamW update over all prompts x samples sequences in one minibatch.

TRL side: ``trl.RLOOTrainer(model=<dir>, reward_funcs=<LlamaForSequenceClassification>)``,
driven by its own ``train()`` loop with ``RLOOConfig(per_device_train_batch_size=prompts*samples,
num_generations=samples, steps_per_generation=1, num_iterations=1, max_completion_length=new_tokens,
generation_kwargs={"min_new_tokens": new_tokens}, temperature=1, top_k=0, top_p=1, beta=kl_coef,
learning_rate, lr_scheduler_type="constant", bf16=False, gradient_checkpointing=False)``, the
default AdamW, ``max_grad_norm`` 1.0 and clipped-ratio loss. TRL's defaults ``bf16=True`` and
``gradient_checkpointing=True`` are switched off: the comparison is float32 and memory is no
constraint here (checkpointing would only add a recomputed forward). The policy and reference
are loaded by TRL from a temporary ``save_pretrained`` directory, as it would from the Hub.
Step seconds run from ``on_step_begin`` to ``on_step_end`` (a ``TrainerCallback``): sampling,
scoring, both log-prob passes, loss forward/backward, gradient clipping, optimizer and scheduler.
The split comes from timing the trainer's own methods (wrapped, not changed):
  sample     ``_generate``: prompt tokenisation, ``model.generate``, decoding to text;
  score      ``_calculate_rewards``: re-tokenising prompt + completion text, reward-model forward;
  reference  ``_get_per_token_logps_and_entropies(ref_model, ...)``;
  old logps  the same on the policy without gradients: TRL's RLOO always computes it, although
             with one epoch of one minibatch the ratio it feeds is exactly 1 (redundant here);
  update     the rest of the step: loss forward (policy log-probs + entropy) and backward,
             clipping, AdamW, and TRL's bookkeeping (advantages, metrics) - ``loss fwd`` and
             ``optimizer`` are printed as the parts of it measured directly.
Ours: ``alignment.rl.learner.Learner`` with ``LearnerConfig(algorithm="rloo",
utility=Utility("identity", "sum"), kl_in="reward", epochs=1, minibatches=1, schedule="constant",
max_grad_norm=1.0, ...)`` (the raw reward and a k1 KL in the reward, as TRL's RLOO) and a
``ModelReward`` over the same prompts as chats; one ``train_step()`` is one step, and its host
timings ``time/sample``, ``time/score``, ``time/reference``, ``time/update`` give the split (it
blocks on its results, so the wall time of the call is the step time). The sampler's log-probs
serve as log pi_old (no extra pass). Our sampler stops on EOS: a row that emits it early is
padding afterwards, and the decode loop ends early only if all rows have ended, so the work
equals TRL's unless every response ends early; ``response tokens`` prints how many were sampled.

Runs alternate (ours, TRL, ours, TRL, ...) over ``--repeats`` so load from other processes hits
both alike; our first call (compilation) and TRL's first step are warm-ups, reported apart.
Prints seconds per step (median), new tokens per second (prompts*samples*new_tokens / step
seconds), the per-phase split, the per-pair ratio TRL / ours, the matmul FLOPs of a step's
useful work (sample + score + reference + 3x policy forward for forward+backward; TRL's
redundant old-logps pass not counted) and both sides' achieved rate next to the machine's
measured float32 matmul peak (a 2048^3 matmul in numpy, torch and jax).

Time: on an idle machine the default run (three repeats) takes about 9 minutes: loading ~30 s, our first call
(compilation) ~1 min, TRL's warm-up step ~80 s, then per repeat one TRL step (~70 s) and one of
ours (~50 s); on a loaded machine several times longer. At the defaults a step is ~6 TFLOP of
matmuls (see the printed estimate). Memory peaks near 12 GB (both frameworks' models and
optimizer states in one process). ``--side ours`` or ``--side trl`` times one side alone.

``--lora RANK``: both sides train LoRA adapters of rank RANK (alpha = 2 RANK, no dropout, A
uniform in +-1/sqrt(fan-in), B = 0) on all seven projections of every layer instead of all the
weights, and pi_0 is the base with the adapters off: ours ``LearnerConfig.lora``
(``alignment.models.lora``), TRL ``peft_config=peft.LoraConfig(...)`` (its reference pass runs the
policy inside peft's ``disable_adapter``; the phase split counts a step's second no-gradient
log-prob pass as the reference). Each side prints its process's peak resident memory and the
bytes of its policy, reference and optimizer state; ``--json PATH`` writes them with the step
times (``benchmarks/lora_smollm2.py`` runs full and LoRA steps on each side in processes of
their own and compares the memory).
Needs ``trl`` 1.x (``pip install -e ".[parity,trl]"``; Python >= 3.11) besides torch and
transformers; the split wraps private ``RLOOTrainer`` methods of trl 1.16. No network:
HF_HUB_OFFLINE=1, the dataset is in memory.

The machine is shared: torch's OpenMP threads slow down sharply when another process takes a
core, so read the per-pair ratios and the quietest pair; try ``--torch-threads 1`` or 2.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections import defaultdict

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_DISABLED", "true")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from alignment.models.decoder import Decoder  # noqa: E402
from alignment.models.heads import RewardModel  # noqa: E402
from alignment.models.tokenizer import Tokenizer  # noqa: E402
from sampling_smollm2 import TEXT, hf_config, load_both  # noqa: E402

# torch, transformers and trl are imported where used (after parsing: --help works without them).

PHASES = ("sample", "score", "reference", "old logps", "update", "loss fwd", "optimizer", "response tokens")
OURS_PHASES = {"sample": "time/sample", "score": "time/score", "reference": "time/reference", "update": "time/update"}


# ----------------------------------------------------------------------------------------- setup


def chat_prompts(tokenizer: Tokenizer, count: int, length: int) -> tuple[list[list[dict]], list[str], np.ndarray]:
    """``count`` one-turn chats whose chat-templated text (SmolLM2's template: default system
    message, the user turn, the generation prompt) is exactly ``length`` tokens: the chats, those
    texts and their ``[count, length]`` ids. Prompt ``i`` quotes the benchmark text from word
    ``i`` on, so all differ."""
    words = (TEXT + " ") * 8
    words = words.split(" ")
    overhead = len(tokenizer.encode_chat([{"role": "user", "content": ""}]))
    chats, texts, ids = [], [], []
    start = 0
    while len(texts) < count:
        content_ids = tokenizer.encode(" ".join(words[start : start + 2 * length]))
        start += 1
        if start + 2 * length > len(words):
            raise ValueError(f"prompt length {length} leaves too few distinct prompts in the benchmark text")
        content = tokenizer.decode(content_ids[: length - overhead])
        chat = [{"role": "user", "content": content}]
        text = tokenizer.apply_chat_template(chat)
        row = tokenizer.encode(text)
        if len(row) == length:  # a cut inside a word can re-merge differently; then take the next start
            chats.append(chat)
            texts.append(text)
            ids.append(row)
    return chats, texts, np.asarray(ids, np.int32)


def hf_tokenizer(tokenizer: Tokenizer):
    """The same BPE as a ``transformers.PreTrainedTokenizerFast`` for TRL: left padding, our
    special tokens (SmolLM2: pad = eos = ``<|im_end|>``). TRL gets prompts as templated text, so it
    needs no chat template."""
    import transformers

    def text(i):
        return None if i is None else tokenizer.decode([i])

    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer.tokenizer, bos_token=text(tokenizer.bos_id), eos_token=text(tokenizer.eos_id),
        pad_token=text(tokenizer.pad_id), padding_side="left", truncation_side="left",
    )


def copy_decoder(model: Decoder) -> Decoder:
    """An independent copy (own buffers: a learner may donate the policy's)."""
    graphdef, state = nnx.split(model)
    return nnx.merge(graphdef, jax.tree.map(jnp.copy, state))


def reward_models(ours: Decoder, torch_policy, head_seed: int, pad_id: int):
    """The policy's backbone with one seeded scalar head, as ``(RewardModel, LlamaForSequenceClassification)``."""
    import torch
    import transformers

    config = ours.config
    kernel = np.random.default_rng(head_seed).normal(0.0, config.init_std, (config.embed_dim, 1)).astype(np.float32)
    ours_rm = RewardModel(copy_decoder(ours), 1, rngs=nnx.Rngs(head_seed))
    ours_rm.kernel.value = jnp.asarray(kernel)
    ours_rm.bias.value = jnp.zeros((1,), jnp.float32)

    hf = hf_config(config)
    hf.num_labels = 1
    hf.pad_token_id = pad_id  # the score is read at the last token that is not padding
    torch_rm = transformers.LlamaForSequenceClassification(hf).eval()
    backbone = {k: v for k, v in torch_policy.state_dict().items() if k.startswith("model.")}
    missing, unexpected = torch_rm.load_state_dict(backbone, strict=False)
    if unexpected or set(missing) != {"score.weight"}:
        raise ValueError(f"reward backbone does not fit: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        torch_rm.score.weight.copy_(torch.from_numpy(kernel.T))
    torch_rm.config._name_or_path = "smollm2-reward"  # TRL names the reward metric after it
    return ours_rm, torch_rm


def check_rewards_agree(ours_rm: RewardModel, torch_rm, prompt_ids: np.ndarray) -> float:
    """Max |difference| of the two reward models' scores on the prompts (no padding)."""
    import torch

    positions = np.broadcast_to(np.arange(prompt_ids.shape[1], dtype=np.int32), prompt_ids.shape)
    ours = np.asarray(ours_rm(jnp.asarray(prompt_ids), jnp.asarray(positions), jnp.ones(prompt_ids.shape, bool)))[:, 0]
    with torch.no_grad():
        theirs = torch_rm(torch.from_numpy(prompt_ids).long()).logits[:, 0].numpy()
    return float(np.max(np.abs(ours - theirs)))


# ------------------------------------------------------------------------------------------- TRL


class TrlTimer:
    """Seconds per phase of each TRL step, from wrapped trainer methods and callback hooks."""

    def __init__(self):
        self.current = defaultdict(float)
        self.steps: list[dict[str, float]] = []

    def wrap(self, trainer):
        import torch

        missing = [m for m in ("_generate", "_calculate_rewards", "_get_per_token_logps_and_entropies") if not hasattr(trainer, m)]
        if missing:
            raise AttributeError(f"this trl's RLOOTrainer lacks {missing}: the phase split is written against trl 1.16")

        def timed(name, fn):
            def wrapper(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    self.current[name] += time.perf_counter() - start
            return wrapper

        logps = trainer._get_per_token_logps_and_entropies

        def logps_wrapper(model, *args, **kwargs):
            if model is trainer.ref_model:
                name = "reference"
            elif not torch.is_grad_enabled():  # with peft the reference pass is the second one, adapters off
                name = "reference" if trainer.ref_model is None and "old logps" in self.current else "old logps"
            else:
                name = "loss fwd"
            return timed(name, logps)(model, *args, **kwargs)

        trainer._generate = timed("sample", trainer._generate)
        trainer._calculate_rewards = timed("score", trainer._calculate_rewards)
        trainer._get_per_token_logps_and_entropies = logps_wrapper


def make_callback(timer: TrlTimer, between_steps):
    import transformers

    class Alternate(transformers.TrainerCallback):
        """Times each TRL step and runs ``between_steps(step)`` after it (outside the timing)."""

        def on_step_begin(self, args, state, control, **kwargs):
            timer.current = defaultdict(float)
            self.start = time.perf_counter()

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            self.optimizer_start = time.perf_counter()

        def on_optimizer_step(self, args, state, control, **kwargs):
            timer.current["optimizer"] += time.perf_counter() - self.optimizer_start

        def on_step_end(self, args, state, control, **kwargs):
            step = dict(timer.current, step=time.perf_counter() - self.start)
            step["update"] = step["step"] - sum(step.get(p, 0.0) for p in ("sample", "score", "reference", "old logps"))
            timer.steps.append(step)
            print(f"  TRL step {state.global_step}: " + ", ".join(f"{k} {v:.2f}" for k, v in step.items()), flush=True)
            between_steps(state.global_step, state.max_steps)

    return Alternate()


PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]  # transformers' Llama names


def make_trl_trainer(args, torch_policy, torch_rm, tok, prompt_texts: list[str], workdir: str):
    import datasets
    import trl

    peft_config = None
    if args.lora:
        import peft

        peft_config = peft.LoraConfig(r=args.lora, lora_alpha=2 * args.lora, lora_dropout=0.0, target_modules=PROJECTIONS,
                                      bias="none", task_type="CAUSAL_LM")
    policy_dir = os.path.join(workdir, "policy")
    torch_policy.save_pretrained(policy_dir)  # TRL loads the policy and builds the reference from a path
    tok.save_pretrained(policy_dir)
    config = trl.RLOOConfig(
        output_dir=os.path.join(workdir, "trl"),
        per_device_train_batch_size=args.prompts * args.samples,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        num_generations=args.samples,
        num_iterations=1,
        max_completion_length=args.new_tokens,
        generation_kwargs={"min_new_tokens": args.new_tokens},
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        beta=args.kl_coef,
        learning_rate=args.learning_rate,
        lr_scheduler_type="constant",
        max_steps=1 + args.repeats,
        model_init_kwargs={"dtype": "float32"},
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        shuffle_dataset=False,
        seed=0,
        report_to="none",
        logging_steps=10**6,
        save_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    dataset = datasets.Dataset.from_dict({"prompt": prompt_texts})
    return trl.RLOOTrainer(
        model=policy_dir, reward_funcs=torch_rm, args=config, train_dataset=dataset,
        processing_class=tok, reward_processing_classes=tok, peft_config=peft_config,
    )


def trl_state_bytes(trainer) -> int:
    """Bytes of TRL's policy (with adapters), reference model (none with peft) and AdamW state."""
    import torch

    models = [trainer.model] + ([trainer.ref_model] if trainer.ref_model is not None else [])
    params = sum(p.numel() * p.element_size() for model in models for p in model.parameters())
    moments = sum(v.numel() * v.element_size() for state in trainer.optimizer.state.values() for v in state.values()
                  if torch.is_tensor(v) and v.dim() > 0)
    return params + moments


# ------------------------------------------------------------------------------------------- ours


def build_jax_learner(args, policy: Decoder, reward_model: RewardModel, tokenizer: Tokenizer, chats):
    """``alignment.rl.Learner`` set up for the same step as TRL's (issue 8's learner)."""
    from alignment.models.lora import LoRAConfig
    from alignment.rl import KLConfig, Learner, LearnerConfig, LossConfig, OptimizerConfig, RolloutConfig
    from alignment.rl.scoring import ModelReward
    from alignment.rl.utility import Utility

    config = LearnerConfig(
        algorithm="rloo", prompts_per_step=args.prompts, num_samples=args.samples,
        rollout=RolloutConfig(max_prompt_length=args.prompt_length, max_new_tokens=args.new_tokens, temperature=1.0, top_k=None, top_p=1.0),
        utility=Utility("identity", "sum"),  # TRL's RLOO optimises the raw reward
        kl=KLConfig(coef=args.kl_coef, placement="reward"),  # TRL's RLOO: k1 summed over the response, in the reward
        loss=LossConfig(clip_epsilon=0.2), epochs=1, minibatches=1, microbatches=1,
        optimizer=OptimizerConfig(learning_rate=args.learning_rate, schedule="constant", weight_decay=0.0, max_grad_norm=1.0),
        num_steps=2 + args.repeats, seed=0, lora=LoRAConfig(rank=args.lora, alpha=2.0 * args.lora) if args.lora else None,
    )
    # Prompt + response + the closing "<|im_end|>\n" of the rendered assistant turn, with room
    # for re-tokenisation drift; TRL pads its reward batch to the longest row (about the same).
    reward = ModelReward(reward_model, tokenizer, ("reward",), max_length=args.prompt_length + args.new_tokens + 8)
    # Per-layer "dots" rematerialisation in the update (as benchmarks/models_smollm2.py): without it
    # the backward pass keeps every layer's activations (the process was seen killed at 21 GB).
    policy.config = policy.config.replace(remat="dots")
    return Learner(
        policy=policy, base_policy=None if args.lora else copy_decoder(policy), tokenizer=tokenizer, rewards=[reward],
        prompts=chats, references=None, config=config,
    )


def jax_state_bytes(learner) -> int:
    """Bytes of our policy (with adapters), reference policy (none with LoRA) and AdamW state."""
    trees = [nnx.state(learner.trainable), nnx.state(learner.optimizer)]
    trees += [nnx.state(learner.base_policy)] if learner.base_policy is not None else []
    return sum(x.nbytes for tree in trees for x in jax.tree.leaves(tree))


def peak_rss_gb() -> float:
    """This process's peak resident memory so far (``ru_maxrss``, KiB on Linux), in GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def jax_step_seconds(learner) -> dict[str, float]:
    """One ``learner.train_step()``: its wall seconds as ``step``, its own split, response tokens."""
    start = time.perf_counter()
    times = learner.train_step()
    times = {k: float(v) for k, v in jax.device_get(times).items()}
    seconds = {"step": time.perf_counter() - start}
    for phase, key in OURS_PHASES.items():
        if key in times:
            seconds[phase] = times[key]
    if "tokens_per_second" in times and "time/step" in times:
        seconds["response tokens"] = times["tokens_per_second"] * times["time/step"]
    return seconds


# ------------------------------------------------------------------------------------ peak, FLOPs


def matmul_peak(n: int = 2048, iters: int = 5) -> dict[str, float]:
    """GFLOP/s of one ``n^3`` float32 matmul (median of ``iters``) in numpy, torch and jax."""
    import torch

    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    ja, jb = jnp.asarray(a), jnp.asarray(b)
    jmatmul = jax.jit(jnp.matmul)
    runs = {
        "numpy": lambda: a @ b,
        "torch": lambda: ta @ tb,
        "jax": lambda: jmatmul(ja, jb).block_until_ready(),
    }
    out = {}
    for name, fn in runs.items():
        fn()
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        out[name] = 2 * n**3 / statistics.median(times) / 1e9
    return out


def step_flops(config, sequences: int, prompt_length: int, new_tokens: int) -> float:
    """Matmul FLOPs of an RLOO step's useful work: sample + score + reference + 3x policy forward."""
    length = prompt_length + new_tokens
    head = config.vocab_size * config.embed_dim
    body = config.num_params - head  # tied embedding: the lookup is no matmul, the output head is
    attention = 4 * config.num_layers * config.num_heads * length**2 * config.head_dim

    def forward(logit_positions):
        return sequences * (2 * (length * body + logit_positions * head) + attention)

    return forward(new_tokens) + forward(0) + forward(new_tokens) + 3 * forward(new_tokens)


# ------------------------------------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=8, help="prompts per step")
    parser.add_argument("--samples", type=int, default=4, help="responses per prompt (G)")
    parser.add_argument("--prompt-length", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--kl-coef", type=float, default=0.05)
    parser.add_argument("--learning-rate", type=float, default=1e-6)
    parser.add_argument("--head-seed", type=int, default=0, help="seed of the reward head's weights")
    parser.add_argument("--repeats", type=int, default=3, help="timed (ours, TRL) pairs after one warm-up each")
    parser.add_argument("--torch-threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--side", choices=("both", "ours", "trl"), default="both", help="time both sides, or one alone")
    parser.add_argument("--lora", type=int, default=0, metavar="RANK", help="LoRA adapters of this rank (0: full fine-tuning)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the measurements to PATH as JSON")
    args = parser.parse_args()
    import torch
    import transformers
    import trl

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    transformers.utils.logging.disable_progress_bar()
    peak = matmul_peak()
    ours, torch_policy, tokenizer = load_both()
    tok = hf_tokenizer(tokenizer)
    torch_policy.config.bos_token_id = torch_policy.generation_config.bos_token_id = tokenizer.bos_id
    torch_policy.config.eos_token_id = torch_policy.generation_config.eos_token_id = tokenizer.eos_id
    torch_policy.config.pad_token_id = torch_policy.generation_config.pad_token_id = tokenizer.pad_id
    chats, prompt_texts, prompt_ids = chat_prompts(tokenizer, args.prompts * (1 + args.repeats), args.prompt_length)
    if tok(prompt_texts)["input_ids"] != prompt_ids.tolist():
        raise AssertionError("transformers' tokenizer disagrees with ours on the prompts")
    ours_rm, torch_rm = reward_models(ours, torch_policy, args.head_seed, tokenizer.pad_id)
    reward_gap = check_rewards_agree(ours_rm, torch_rm, prompt_ids[: args.prompts])

    sequences = args.prompts * args.samples
    new = sequences * args.new_tokens
    flops = step_flops(ours.config, sequences, args.prompt_length, args.new_tokens)
    mode = f"LoRA rank {args.lora} (alpha {2 * args.lora})" if args.lora else "full fine-tuning"
    print(f"jax {jax.__version__} ({jax.devices()[0].platform}), torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"transformers {transformers.__version__}, trl {trl.__version__}; {args.prompts} prompts x {args.samples} samples, "
          f"prompt {args.prompt_length}, {args.new_tokens} new tokens, float32, KL coef {args.kl_coef}, {mode}")
    print("float32 matmul 2048^3: " + ", ".join(f"{k} {v:.0f}" for k, v in peak.items()) + " GFLOP/s; "
          f"useful matmul work per step {flops / 1e12:.2f} TFLOP")
    print(f"reward models agree on the prompts to {reward_gap:.2e} (max |ours - transformers|); "
          f"peak memory after loading {peak_rss_gb():.2f} GB", flush=True)

    learner = None
    ours_steps: list[dict[str, float]] = []
    ours_first = None
    if args.side != "trl":
        learner = build_jax_learner(args, ours, ours_rm, tokenizer, chats)
        start = time.perf_counter()
        jax_step_seconds(learner)  # compiles
        ours_first = time.perf_counter() - start
        print(f"  ours first call (compiles): {ours_first:.1f} s", flush=True)

    def between_steps(step, max_steps):
        if learner is not None and step < max_steps:
            ours_steps.append(jax_step_seconds(learner))
            print("  ours step: " + ", ".join(f"{k} {v:.2f}" for k, v in ours_steps[-1].items()), flush=True)

    trl_first, trl_steps, trl_bytes = None, [], None
    if args.side == "ours":
        for _ in range(args.repeats):
            between_steps(0, 1)
    else:
        with tempfile.TemporaryDirectory(prefix="rl_step_smollm2_") as workdir:
            trainer = make_trl_trainer(args, torch_policy, torch_rm, tok, prompt_texts, workdir)
            del torch_policy
            timer = TrlTimer()
            timer.wrap(trainer)
            trainer.remove_callback(transformers.PrinterCallback)  # its end-of-training log dict
            trainer.add_callback(make_callback(timer, between_steps))
            trainer.train()
            trl_bytes = trl_state_bytes(trainer)
        trl_first, trl_steps = timer.steps[0], timer.steps[1:]

    def report(name, steps, first):
        seconds = [s["step"] for s in steps]
        median = statistics.median(seconds)
        print(f"  {name}: {median:6.2f} s/step  {new / median:6.1f} new tokens/s  {flops / median / 1e9:5.0f} GFLOP/s "
              f"({flops / median / 1e9 / peak['numpy']:.0%} of the numpy matmul)  (runs: {_fmt(seconds)} s; first {first:.1f} s)")
        split = [f"{p} {statistics.median([s[p] for s in steps]):.{0 if p == 'response tokens' else 2}f}"
                 for p in PHASES if all(p in s for s in steps)]
        print(f"  {'':{len(name)}}  split (s, median): " + ", ".join(split))

    print()
    if ours_steps:
        report("ours (jax)", ours_steps, ours_first)
    if trl_steps:
        report("TRL RLOO  " if ours_steps else "TRL RLOO", trl_steps, trl_first["step"])
    if ours_steps and trl_steps:
        ratios = [t["step"] / o["step"] for o, t in zip(ours_steps, trl_steps)]
        print(f"  speed-up TRL / ours: {statistics.median(ratios):.2f}x median of paired runs ({_fmt(ratios)})")
    ours_bytes = None if learner is None else jax_state_bytes(learner)
    states = [f"{name} {b / 1e9:.3f} GB" for name, b in (("ours", ours_bytes), ("TRL", trl_bytes)) if b is not None]
    print(f"  policy + reference + optimizer state: {', '.join(states)}; peak memory of this process {peak_rss_gb():.2f} GB")
    if args.json:
        record = {"side": args.side, "lora": args.lora, "peak_rss_gb": peak_rss_gb(), "ours_state_bytes": ours_bytes,
                  "trl_state_bytes": trl_bytes, "ours_steps": ours_steps, "ours_first": ours_first, "trl_steps": trl_steps,
                  "flops": flops, "matmul_peak": peak}
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)


def _fmt(times) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


if __name__ == "__main__":
    main()
