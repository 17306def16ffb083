"""The gold-reward sandbox: a closed-world chat task whose "helpful" and "harmless" utilities are code.

Prompts are requests on twelve topics, half of them risky; responses are composed from a
sentence bank (``bank``) by a stochastic grammar (``responses``), the base distribution. The
gold utilities (``gold``) score any text, saturate in content and punish verbosity (room for
reward over-optimisation), and conflict on risky prompts. Preference pairs are labelled by
the Bradley-Terry model of one gold utility (``preferences``). A tiny decoder fitted to the
grammar by SFT is the base policy (``policy``). ``load_sandbox`` builds and caches it all::

    import jax
    from alignment import sandbox

    box = sandbox.load_sandbox()                      # builds and caches on the first call
    train = box.records("helpful", "reward_train")    # a list of PreferenceRecord
    prompts = box.splits["eval"][:4]
    texts = box.sample(prompts, jax.random.key(0))    # one base-policy response per prompt
    print(sandbox.gold_utilities(prompts[0].text, texts[0]))   # {'helpful': ..., 'harmless': ...}

The first call for a config trains the base policy (one to two minutes on a 2-core CPU;
``benchmarks/sandbox_build.py`` measures it); later calls load it from the cache in seconds.
The cache lives in ``load_sandbox``'s ``cache_dir`` argument, else in ``$ALIGNMENT_SANDBOX_CACHE``,
else in ``$XDG_CACHE_HOME/alignment/sandbox`` (``~/.cache/alignment/sandbox`` when
``XDG_CACHE_HOME`` is unset), one folder per config (``cache_key``).
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
from alignment.sandbox.preferences import gold_accuracy, gold_margins, label_pair, label_pairs, split_prompts
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
    "label_pair",
    "label_pairs",
    "load_sandbox",
    "preference_records",
    "sample_response",
    "sandbox_tokenizer",
    "split_prompts",
    "split_sentences",
    "topic_of",
]
