"""The sandbox's probe table for an experiment's proxies: what they reward that gold does not.

``measure_probes(task, proxies, responses)`` edits one base response per held-out prompt with
every probe of ``alignment.sandbox.probes`` (more sentences, a repeated detail, a hazard, ...),
scores the base and the edited texts with the proxies and returns ``probe_table``'s rows: per
probe, the mean change of the gold utilities and of each proxy, side by side. Only the sandbox
has gold utilities that can score any text, so for any other task it returns no rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from alignment.experiment.tasks import TaskData
from alignment.parallel import to_host
from alignment.rl.scoring import RewardFunction, score_all
from alignment.sandbox.probes import probe_pairs, probe_table

SANDBOX_JUDGE_NAME = "the sandbox's gold utilities"
"""``TaskData.judge_name`` of a sandbox task (``alignment.experiment.tasks``), whose judge is gold."""


def measure_probes(task: TaskData, proxies: Sequence[RewardFunction], responses: Sequence[str], seed: int = 0) -> list[dict]:
    """``probe_table`` rows of the proxies on probes of ``responses``, one base response per
    held-out prompt (``responses[i]`` answers ``task.eval_chats[i]``, e.g. a pi_0 sample); ``[]``
    for a task that is not the sandbox (``task.judge_name``).

    The probes draw from ``numpy.random.default_rng(seed)``. The proxies score the base responses
    in one call and all edited responses in another (``score_all`` with ``group_size=1``, so a
    ``GPMReward`` needs fixed opponents, ``against``); the table's proxy columns are the scored
    properties, in ``task.properties`` order.
    """
    if task.judge_name != SANDBOX_JUDGE_NAME:
        return []
    chats = list(task.eval_chats)
    if len(responses) != len(chats):
        raise ValueError(f"got {len(responses)} responses for {len(chats)} held-out prompts; need one response per prompt")
    pairs = probe_pairs([chat[-1]["content"] for chat in chats], [str(r) for r in responses], np.random.default_rng(seed))
    if not pairs:
        return []
    base = to_host(score_all(proxies, chats, [str(r) for r in responses], 1))
    edited = to_host(score_all(proxies, [chats[p.prompt_index] for p in pairs], [p.edited for p in pairs], 1))
    properties = [p for p in task.properties if p in base] + [p for p in base if p not in task.properties]
    index = [p.prompt_index for p in pairs]

    def columns(scores, rows) -> np.ndarray:
        return np.array([np.asarray(scores[p], np.float64)[rows] for p in properties]).T.reshape(len(pairs), len(properties))

    return probe_table(pairs, columns(base, index), columns(edited, slice(None)), properties)
