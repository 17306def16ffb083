"""Tasks: where pi_0, the proxies' training pairs, the prompts and the judge come from.

``prepare_task(task)`` turns a task config into a ``TaskData`` that the runner reads and that
nothing else needs to know about: the base policy and its tokenizer, the alignment and held-out
prompts as chats, the reward-model training batches of each property, and the judge, a function
``judge(chats, texts) -> [N, P]`` that is never optimised (the sandbox's gold utilities there).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from alignment import data, sandbox
from alignment.data import RewardBatch
from alignment.experiment.spec import PretrainedTask, RewardModelSpec, SandboxTask
from alignment.models.decoder import Decoder
from alignment.models.tokenizer import Tokenizer
from alignment.rl.scoring import Chat
from alignment.sandbox.policy import messages

Judge = Callable[[Sequence[Chat], Sequence[str]], np.ndarray]


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
      directory: where the task's own artefacts live (e.g. the sandbox cache entry), if anywhere.
    """

    properties: tuple[str, ...]
    policy: Decoder
    tokenizer: Tokenizer
    alignment_chats: list[Chat]
    eval_chats: list[Chat]
    reward_batches: Callable[[RewardModelSpec, Sequence[str]], Iterator[tuple[str, RewardBatch]]]
    judge: Judge
    judge_name: str
    directory: Path | None = None


def prepare_task(task: SandboxTask | PretrainedTask, cache_dir: str | Path | None = None) -> TaskData:
    """Builds (or loads from its cache) everything ``task`` names."""
    if isinstance(task, SandboxTask):
        return _sandbox_task(task, cache_dir)
    raise TypeError(f"unknown task type {type(task).__name__}; valid: SandboxTask")


def _sandbox_task(task: SandboxTask, cache_dir: str | Path | None) -> TaskData:
    box = sandbox.load_sandbox(task.sandbox, cache_dir=cache_dir)
    for name, need in (("policy", task.alignment_prompts), ("eval", task.eval_prompts)):
        if len(box.splits[name]) < need:
            raise ValueError(f"the sandbox's {name!r} split has {len(box.splits[name])} prompts; the task asks for {need}")
    records = sandbox.preference_records(dataclasses.replace(task.sandbox, pairs_per_prompt=task.reward_pairs_per_prompt))
    reward_prompts = {p.text for p in box.splits["reward_train"]}
    train = {prop: [r for r in records[prop] if r.context[-1].content in reward_prompts] for prop in sandbox.PROPERTIES}

    def reward_batches(spec: RewardModelSpec, properties: Sequence[str]) -> Iterator[tuple[str, RewardBatch]]:
        batcher = data.RewardBatcher(box.tokenizer.pad_id, batch_size=spec.batch_size, max_length=spec.train_max_length,
                                     buckets=_buckets(spec.train_max_length))
        batches = [(prop, batch) for prop in properties for batch in batcher(data.encode_pair(r, box.tokenizer) for r in train[prop])]
        order = np.random.default_rng(spec.seed)
        while True:
            yield from (batches[i] for i in order.permutation(len(batches)))

    def judge(chats: Sequence[Chat], texts: Sequence[str]) -> np.ndarray:
        scores = [sandbox.gold_utilities(chat[-1]["content"], text) for chat, text in zip(chats, texts)]
        return np.array([[s[p] for p in sandbox.PROPERTIES] for s in scores], np.float32).reshape(len(texts), len(sandbox.PROPERTIES))

    return TaskData(
        properties=sandbox.PROPERTIES,
        policy=box.policy,
        tokenizer=box.tokenizer,
        alignment_chats=[messages(p) for p in box.splits["policy"][: task.alignment_prompts]],
        eval_chats=[messages(p) for p in box.splits["eval"][: task.eval_prompts]],
        reward_batches=reward_batches,
        judge=judge,
        judge_name="the sandbox's gold utilities",
        directory=box.directory,
    )


def _buckets(max_length: int) -> tuple[int, ...]:
    """Shorter padded lengths in steps of 16 below ``max_length``, from 64 (fewer padded tokens)."""
    return tuple(range(64, max_length, 16))
