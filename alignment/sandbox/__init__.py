"""The gold-reward sandbox: a closed-world chat task whose "helpful" and "harmless" utilities are code.

Prompts are requests on twelve topics, half of them risky; responses are composed from a
sentence bank (``bank``) by a stochastic grammar (``responses``), the base distribution. The
gold utilities (``gold``) score any text, saturate in content and punish verbosity (room for
reward over-optimisation), and conflict on risky prompts. Preference pairs are labelled by
the Bradley-Terry model of one gold utility (``preferences``). A tiny decoder fitted to the
grammar by SFT is the base policy (``policy``). ``load_sandbox`` builds and caches it all::

    from alignment import sandbox
    box = sandbox.load_sandbox()                      # ~1-2 min the first time, then seconds
    train = box.records("helpful", "reward_train")    # PreferenceRecord list
    texts = box.sample(box.splits["eval"], jax.random.key(0))
    sandbox.gold_utilities(prompt.text, texts[0])     # {"helpful": ..., "harmless": ...}
"""

from alignment.sandbox.bank import KINDS, SENTENCES, TOPICS, Sentence, Topic
from alignment.sandbox.build import (
    CACHE_ENV,
    Sandbox,
    SandboxConfig,
    cache_key,
    cache_root,
    load_sandbox,
    preference_records,
    sandbox_tokenizer,
)
from alignment.sandbox.gold import PROPERTIES, features, gold_utilities, split_sentences
from alignment.sandbox.policy import PolicyConfig
from alignment.sandbox.preferences import gold_accuracy, gold_margins, label_pairs, split_prompts
from alignment.sandbox.prompts import Prompt, all_prompts, topic_of
from alignment.sandbox.responses import ResponseGrammar, sample_response

__all__ = [
    "CACHE_ENV",
    "KINDS",
    "PROPERTIES",
    "SENTENCES",
    "TOPICS",
    "PolicyConfig",
    "Prompt",
    "ResponseGrammar",
    "Sandbox",
    "SandboxConfig",
    "Sentence",
    "Topic",
    "all_prompts",
    "cache_key",
    "cache_root",
    "features",
    "gold_accuracy",
    "gold_margins",
    "gold_utilities",
    "label_pairs",
    "load_sandbox",
    "preference_records",
    "sample_response",
    "sandbox_tokenizer",
    "split_prompts",
    "split_sentences",
    "topic_of",
]
