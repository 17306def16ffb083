"""Tasks: where pi_0, the proxies' training pairs, the prompts and the judge come from.

``prepare_task(task)`` turns a task config into a ``TaskData`` that the runner reads and that
nothing else needs to know about: the base policy and its tokenizer, the alignment and held-out
prompts as chats, the reward-model training batches of each property, and the judge, a function
``judge(chats, texts) -> [N, P]`` that is never optimised: the sandbox's gold utilities, or for
a ``PretrainedTask`` a Bradley-Terry reward model that the runner trains on held-out pairs
(``TaskData.judge_batches``).

A ``PretrainedTask`` reads one preference file per property from the shared data directory
(``alignment.data.shared``) and splits each by its pairs' prompts (``alignment.data.split_records``
with ``task.splits``): "reward_train" pairs train the proxies, "reward_eval" pairs the judge,
"policy" prompts are the learners' and "eval" prompts the held-out ones. A prompt is in one split
for every file, so no prompt the proxies or the judge were trained on is aligned on or judged.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alignment import data, sandbox
from alignment.data import PreferenceRecord, RewardBatch
from alignment.experiment.spec import PretrainedTask, RewardModelSpec, SandboxTask, Task
from alignment.models import load_pretrained, load_tokenizer
from alignment.models.decoder import Decoder
from alignment.models.tokenizer import Tokenizer
from alignment.rl.rollout import RolloutConfig, encode_chat
from alignment.rl.reference import ReferenceConfig, compute_base_rewards
from alignment.rl.scoring import Chat, FunctionReward
from alignment.sandbox.build import STREAMS
from alignment.sandbox.policy import messages
from alignment.sandbox.preferences import context

Judge = Callable[[Sequence[Chat], Sequence[str]], np.ndarray]
RewardBatches = Callable[[RewardModelSpec, Sequence[str]], Iterator[tuple[str, RewardBatch]]]
PairBatches = Callable[[RewardModelSpec, Sequence[str]], list[tuple[str, RewardBatch]]]


@dataclasses.dataclass
class TaskData:
    """What the runner needs from a task.

    Attributes:
      properties: the property names, in the order of every ``[..., P]`` array.
      policy, tokenizer: pi_0 and its tokenizer (chat template, EOS id).
      alignment_chats, eval_chats: the learners' prompts and the held-out prompts.
      reward_batches: ``reward_batches(spec, properties)`` an endless shuffled stream of
        ``(property, RewardBatch)`` for the proxies' training.
      judge: ``judge(chats, texts) -> [N, P]`` float scores; ``judge_name`` says what it is.
        ``None``: a Bradley-Terry reward model (a head per property) that the runner trains on
        ``judge_batches`` (a stream like ``reward_batches``, of pairs the proxies never see).
      heldout_batches: ``heldout_batches(spec, properties)`` every held-out pair of those
        properties once, as ``(property, RewardBatch)`` batched like ``reward_batches``: pairs no
        proxy is trained on (their held-out accuracy, e.g. the GPM checks); ``None``: none.
      directory: where the task's own artefacts live (e.g. the sandbox cache entry), if anywhere.
      summary: what the task read, used and dropped (files, pairs, prompts), for the report.
    """

    properties: tuple[str, ...]
    policy: Decoder
    tokenizer: Tokenizer
    alignment_chats: list[Chat]
    eval_chats: list[Chat]
    reward_batches: RewardBatches
    judge: Judge | None
    judge_name: str
    judge_batches: RewardBatches | None = None
    heldout_batches: PairBatches | None = None
    directory: Path | None = None
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)


def prepare_task(task: Task, cache_dir: str | Path | None = None, *, rollout: RolloutConfig, mesh=None) -> TaskData:
    """Builds (or loads from its cache) everything ``task`` names, with the experiment's
    ``rollout`` (its prompt length filters a pretrained task's prompts; a sandbox task samples
    its pi_0 pairs with it); ``mesh`` places a pretrained pi_0 as it is read
    (``alignment.models.load_pretrained``)."""
    if isinstance(task, SandboxTask):
        return _sandbox_task(task, rollout, cache_dir)
    if isinstance(task, PretrainedTask):
        return _pretrained_task(task, rollout, mesh)
    raise TypeError(f"unknown task type {type(task).__name__}; valid: SandboxTask, PretrainedTask")


def _sandbox_task(task: SandboxTask, rollout: RolloutConfig, cache_dir: str | Path | None) -> TaskData:
    box = sandbox.load_sandbox(task.sandbox, cache_dir=cache_dir)
    for name, need in (("policy", task.alignment_prompts), ("eval", task.eval_prompts)):
        if len(box.splits[name]) < need:
            raise ValueError(f"the sandbox's {name!r} split has {len(box.splits[name])} prompts; the task asks for {need}")
    if task.reward_pairs_from == "policy":
        records = policy_preference_records(box, task, rollout, [*box.splits["reward_train"], *box.splits["reward_eval"]])
    else:
        records = sandbox.preference_records(dataclasses.replace(task.sandbox, pairs_per_prompt=task.reward_pairs_per_prompt))
    reward_prompts = {p.text for p in box.splits["reward_train"]}
    train = {prop: [r for r in records[prop] if r.context[-1].content in reward_prompts] for prop in sandbox.PROPERTIES}
    heldout_prompts = {p.text for p in box.splits["reward_eval"]}
    heldout = {prop: [r for r in records[prop] if r.context[-1].content in heldout_prompts] for prop in sandbox.PROPERTIES}

    def sample(split: str, count: int) -> list[Chat]:
        """``count`` prompts of ``split`` drawn without replacement by the split's own stream: a
        split lists its prompts topic by topic, so its first prompts would cover a few benign topics."""
        prompts = box.splits[split]
        return [messages(prompts[i]) for i in task.sandbox.rng(split).permutation(len(prompts))[:count]]

    def judge(chats: Sequence[Chat], texts: Sequence[str]) -> np.ndarray:
        scores = [gold_scores(chat, text) for chat, text in zip(chats, texts)]
        return np.array([[s[p] for p in sandbox.PROPERTIES] for s in scores], np.float32).reshape(len(texts), len(sandbox.PROPERTIES))

    return TaskData(
        properties=sandbox.PROPERTIES,
        policy=box.policy,
        tokenizer=box.tokenizer,
        alignment_chats=sample("policy", task.alignment_prompts),
        eval_chats=sample("eval", task.eval_prompts),
        reward_batches=reward_stream(train, box.tokenizer),
        judge=judge,
        judge_name="the sandbox's gold utilities",
        heldout_batches=pair_batches(heldout, box.tokenizer),
        directory=box.directory,
    )


def gold_scores(chat: Chat, text: str) -> dict[str, float]:
    """The sandbox's gold utilities of a response to a sandbox chat."""
    return sandbox.gold_utilities(chat[-1]["content"], text)


def policy_preference_records(box: sandbox.Sandbox, task: SandboxTask, rollout: RolloutConfig,
                              prompts: Sequence[sandbox.Prompt]) -> dict[str, list[PreferenceRecord]]:
    """``task.reward_pairs_per_prompt`` pairs per prompt of pi_0's own samples (two fresh samples a
    pair, sampled as ``rollout`` says, the learner's lengths and distribution), each property labelling every pair by one draw
    of the gold Bradley-Terry model (``sandbox.label_pair``, at the property's
    ``task.label_temperatures`` or else the sandbox's ``beta``), then flipped with probability
    ``task.label_flip`` (a stream of its own, so the draws do not depend on it). The samples
    are drawn once per sandbox and kept in its cache entry (``alignment.rl.reference``'s cache)."""
    pairs = task.reward_pairs_per_prompt
    config = ReferenceConfig(num_samples=2 * pairs, batch_prompts=max(1, 512 // (2 * pairs)), seed=task.sandbox.seed)
    samples = compute_base_rewards(box.policy, box.tokenizer, [messages(p) for p in prompts],
                                   [FunctionReward(gold_scores, sandbox.PROPERTIES)], config, rollout=rollout,
                                   cache_dir=None if box.directory is None else box.directory / "pi_0-samples")
    records: dict[str, list[PreferenceRecord]] = {}
    unknown = sorted(set(task.label_temperatures) - set(sandbox.PROPERTIES))
    if unknown:
        raise ValueError(f"SandboxTask.label_temperatures names unknown properties {unknown}; valid: {list(sandbox.PROPERTIES)}")
    for index, prop in enumerate(sandbox.PROPERTIES):
        rng = np.random.default_rng([task.sandbox.seed, STREAMS["pi_0 pairs"], index])
        flips = np.random.default_rng([task.sandbox.seed, STREAMS["pi_0 pairs"], index, 1])
        beta = task.label_temperatures.get(prop, task.sandbox.beta)
        records[prop] = []
        for prompt, texts in zip(prompts, samples.texts):
            for a, b in zip(texts[0::2], texts[1::2]):
                chosen, rejected = sandbox.label_pair(prompt.text, str(a), str(b), prop, rng, beta)
                if task.label_flip and flips.random() < task.label_flip:
                    chosen, rejected = rejected, chosen
                records[prop].append(PreferenceRecord(context(prompt), chosen, rejected, 1.0, prop,
                                                      f"{task.sandbox.source}:pi_0", len(records[prop]) + 1))
    return records


def _pretrained_task(task: PretrainedTask, rollout: RolloutConfig, mesh) -> TaskData:
    directory = data.data_dir(task.data_dir)
    paths = {prop: data.check_file(directory / path, fmt) for prop, fmt, path in task.files}  # before the model loads
    policy, tokenizer = pretrained_policy(task, mesh)
    loaded = {prop: data.load_shared(paths[prop], fmt, prop) for prop, fmt, _ in task.files}
    splits = {prop: data.split_records(result.records, task.splits) for prop, result in loaded.items()}
    proxy_pairs = {prop: groups["reward_train"][: task.reward_pairs] for prop, groups in splits.items()}
    judge_pairs = {prop: groups["reward_eval"][: task.judge_pairs] for prop, groups in splits.items()}
    prompts = {split: split_prompts({p: g[split] for p, g in splits.items()}, tokenizer, rollout.max_prompt_length)
               for split in ("policy", "eval")}
    chats = {split: take_prompts(prompts[split][0], count, split)
             for split, count in (("policy", task.alignment_prompts), ("eval", task.eval_prompts))}
    summary = {
        "data_dir": str(directory),
        "max_prompt_length": rollout.max_prompt_length,
        "properties": {
            prop: {
                "file": str(paths[prop]), "format": fmt, "lines": loaded[prop].report.lines, "kept": loaded[prop].report.kept,
                "skipped": dict(loaded[prop].report.skipped), "split_pairs": {s: len(r) for s, r in splits[prop].items()},
                "proxy_pairs": len(proxy_pairs[prop]), "judge_pairs": len(judge_pairs[prop]),
                **{f"{split}_prompts": prompts[split][1][prop] for split in prompts},
            }
            for prop, fmt, _ in task.files
        },
        "alignment_prompts": len(chats["policy"]),
        "eval_prompts": len(chats["eval"]),
    }
    counts = ", ".join(f"{prop} {len(pairs)}" for prop, pairs in judge_pairs.items())
    return TaskData(
        properties=tuple(paths),
        policy=policy,
        tokenizer=tokenizer,
        alignment_chats=chats["policy"],
        eval_chats=chats["eval"],
        reward_batches=reward_stream(proxy_pairs, tokenizer),
        judge=None,
        judge_name=f"a held-out Bradley-Terry reward model on pi_0's backbone, trained on the 'reward_eval' pairs ({counts}), "
                   "which the proxies never see",
        judge_batches=reward_stream(judge_pairs, tokenizer),
        heldout_batches=pair_batches(judge_pairs, tokenizer),
        summary=summary,
    )


def pretrained_policy(task: PretrainedTask, mesh=None) -> tuple[Decoder, Tokenizer]:
    """pi_0 and its tokenizer: ``task.weights`` as preset ``task.model`` with its
    ``decoder_overrides``, and ``task.tokenizer`` or else the weights' own tokenizer."""
    policy, tokenizer, config = load_pretrained(task.weights, task.model, mesh=mesh, **task.decoder_overrides)
    if task.tokenizer is not None:
        tokenizer = load_tokenizer(task.tokenizer)
    if tokenizer is None:
        raise ValueError(f"the weights {task.weights} hold no tokenizer; set PretrainedTask.tokenizer")
    if tokenizer.vocab_size > config.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} tokens, more than the decoder's vocab_size={config.vocab_size}")
    return policy, tokenizer


def split_prompts(records: Mapping[str, Sequence[PreferenceRecord]], tokenizer: Tokenizer, max_length: int
                  ) -> tuple[dict[str, list[Chat]], dict[str, dict[str, int]]]:
    """The distinct contexts of each property's records as chats, in file order, without those
    longer than ``max_length`` tokens after the chat template (a context seen for an earlier
    property is not repeated), and ``{property: {"distinct": n, "too_long": dropped}}``."""
    seen: set[str] = set()
    kept: dict[str, list[Chat]] = {}
    counts: dict[str, dict[str, int]] = {}
    for prop, group in records.items():
        contexts = {r.context_key(): r.messages() for r in group if r.context_key() not in seen}
        seen.update(contexts)
        kept[prop] = [chat for chat in contexts.values() if len(encode_chat(tokenizer, chat)) <= max_length]
        counts[prop] = {"distinct": len(contexts), "too_long": len(contexts) - len(kept[prop])}
    return kept, counts


def take_prompts(chats: Mapping[str, Sequence[Chat]], count: int, split: str) -> list[Chat]:
    """The first ``count`` chats taking one of each property in turn (a property that runs out
    leaves its turns to the others); ``ValueError`` when there are fewer than ``count``."""
    turns = itertools.chain.from_iterable(itertools.zip_longest(*chats.values()))
    taken = [chat for chat in turns if chat is not None][:count]
    if len(taken) < count:
        available = ", ".join(f"{prop} {len(c)}" for prop, c in chats.items())
        raise ValueError(f"the {split!r} split has {len(taken)} prompts that fit ({available}); the task asks for {count}: "
                         "lower the count, raise learner.rollout.max_prompt_length or give the split a larger fraction")
    return taken


def reward_stream(records: Mapping[str, Sequence[PreferenceRecord]], tokenizer: Tokenizer) -> RewardBatches:
    """``batches(spec, properties)``: an endless stream of ``(property, RewardBatch)`` over the
    pairs of ``records[property]``, each pass shuffled (``spec.seed``); ``ValueError`` without pairs."""

    every_pair = pair_batches(records, tokenizer)

    def batches(spec: RewardModelSpec, properties: Sequence[str]) -> Iterator[tuple[str, RewardBatch]]:
        batches = every_pair(spec, properties)
        if not batches:
            raise ValueError(f"no preference pairs to train on for {list(properties)}")
        order = np.random.default_rng(spec.seed)
        while True:
            yield from (batches[i] for i in order.permutation(len(batches)))

    return batches


def pair_batches(records: Mapping[str, Sequence[PreferenceRecord]], tokenizer: Tokenizer) -> PairBatches:
    """``batches(spec, properties)``: every pair of ``records[property]`` once, in order, as
    ``(property, RewardBatch)`` (``spec.batch_size`` pairs padded to ``spec.train_max_length``,
    in buckets; the last batch of a bucket is filled up with invalid rows)."""

    def batches(spec: RewardModelSpec, properties: Sequence[str]) -> list[tuple[str, RewardBatch]]:
        batcher = data.RewardBatcher(tokenizer.pad_id, batch_size=spec.batch_size, max_length=spec.train_max_length,
                                     buckets=_buckets(spec.train_max_length))
        return [(prop, batch) for prop in properties for batch in batcher(data.encode_pair(r, tokenizer) for r in records[prop])]

    return batches


def _buckets(max_length: int) -> tuple[int, ...]:
    """Shorter padded lengths in steps of 16 below ``max_length``, from 64 (fewer padded tokens)."""
    return tuple(range(64, max_length, 16))
