"""The sandbox's probes: each edit moves gold as documented, the table's arithmetic, measure_probes."""

import inspect
import math
import re

import numpy as np
import pytest

from alignment.experiment import TaskData, measure_probes, tasks
from alignment.experiment.probes import SANDBOX_JUDGE_NAME
from alignment.rl.scoring import FunctionReward
from alignment.sandbox import SENTENCES, all_prompts, features, gold_utilities, sample_response, split_sentences, topic_of
from alignment.sandbox import gold
from alignment.sandbox.bank import CLOSINGS, REFUSALS, TOPIC_BY_NAME
from alignment.sandbox import probes as probes_module
from alignment.sandbox.probes import MORE_SENTENCES_TARGET, PROBES, Probe, ProbePair, garbled, probe_pairs, probe_table

PROMPTS = [p.text for p in all_prompts()[::9]]  # 192 prompts, 16 of each topic
COOKING = "How do I cook rice?"
VOCABULARY = {w for s in SENTENCES for w in re.findall(r"\w+", s)}


def _length_penalty(n: int) -> float:
    return gold.LAMBDA * max(0, n - gold.L_FREE) ** 2


def _delta(pair: ProbePair, prop: str) -> float:
    return pair.gold_edited[prop] - pair.gold_base[prop]


def _length_change(pair: ProbePair) -> float:
    return _length_penalty(len(split_sentences(pair.edited))) - _length_penalty(len(split_sentences(pair.base)))


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(0)
    base = [sample_response(topic_of(p), rng) for p in PROMPTS]
    return probe_pairs(PROMPTS, base, np.random.default_rng(1))


def _of(pairs, name):
    selected = [p for p in pairs if p.probe == name]
    assert selected, f"no pairs of {name}"
    return selected


def _features(pair):
    topic = topic_of(pair.prompt)
    return features(topic, pair.base), features(topic, pair.edited)


def test_every_probe_applies_and_writes_bank_text(pairs):
    assert {p.probe for p in pairs} == set(PROBES)
    for pair in pairs:
        assert re.fullmatch(r"[A-Za-z0-9 ,.?!]+", pair.edited) and "  " not in pair.edited, pair.edited
        assert all(s[-1] in ".?!" for s in split_sentences(pair.edited))
        assert set(re.findall(r"\w+", pair.edited)) <= VOCABULARY  # no word the sandbox tokenizer lacks
        assert pair.gold_base == gold_utilities(pair.prompt, pair.base)
        assert pair.gold_edited == gold_utilities(pair.prompt, pair.edited)
        assert pair.prompt == PROMPTS[pair.prompt_index] and pair.edited != pair.base


def test_probe_pairs_are_reproducible_and_check_their_inputs(pairs):
    rng = np.random.default_rng(0)
    base = [sample_response(topic_of(p), rng) for p in PROMPTS]
    assert probe_pairs(PROMPTS, base, np.random.default_rng(1)) == pairs
    with pytest.raises(ValueError, match="one response per prompt"):
        probe_pairs(PROMPTS, base[:-1], rng)
    with pytest.raises(KeyError, match="not a sandbox prompt"):
        probe_pairs(["What is love?"], ["Good question."], rng)


def test_more_sentences_fills_up_with_distinct_details_and_loses_gold_helpfulness(pairs):
    selected = _of(pairs, "more_sentences")
    for pair in selected:
        topic = topic_of(pair.prompt)
        before, after = _features(pair)
        added = MORE_SENTENCES_TARGET - before.n
        assert after.n == MORE_SENTENCES_TARGET
        assert after.details == min(len(topic.details), before.details + added)  # distinct ones first
        assert after.rep - before.rep == added - (after.details - before.details)
        assert (after.off, after.hazards, after.garbled, after.caveats) == (before.off, before.hazards, before.garbled, before.caveats)
        content = lambda f: gold.A * (1 - math.exp(-(f.details + gold.W_HAZARD * f.hazards_on_topic) / gold.TAU))  # noqa: E731
        expected = content(after) - content(before) - gold.P_REPEAT * (after.rep - before.rep) - _length_change(pair)
        assert _delta(pair, "helpful") == pytest.approx(expected)
        assert _delta(pair, "harmless") == 0.0
    assert np.mean([_delta(p, "helpful") for p in selected]) < -0.5
    # Past L_FREE with enough details already, every added detail costs gold helpfulness.
    base = " ".join(TOPIC_BY_NAME["cooking"].details[:4] + CLOSINGS)
    assert len(split_sentences(base)) == gold.L_FREE
    edited = PROBES["more_sentences"].edit(TOPIC_BY_NAME["cooking"], base, np.random.default_rng(0))
    assert gold_utilities(COOKING, edited)["helpful"] < gold_utilities(COOKING, base)["helpful"]
    assert len(split_sentences(edited)) == MORE_SENTENCES_TARGET and split_sentences(edited)[-3:] == list(CLOSINGS)
    long = " ".join(TOPIC_BY_NAME["cooking"].details * 2)
    assert PROBES["more_sentences"].edit(TOPIC_BY_NAME["cooking"], long, np.random.default_rng(0)) is None


def test_repeated_detail_costs_p_repeat(pairs):
    for pair in _of(pairs, "repeated_detail"):
        before, after = _features(pair)
        if before.details:
            assert (after.rep, after.n, after.details) == (before.rep + 1, before.n + 1, before.details)
            assert _delta(pair, "helpful") == pytest.approx(-gold.P_REPEAT - _length_change(pair))
        else:
            assert (after.rep, after.n, after.details) == (before.rep + 1, before.n + 2, 1)
        assert _delta(pair, "harmless") == 0.0


def test_extra_closing_and_extra_ack_change_only_the_length(pairs):
    for name in ("extra_closing", "extra_ack"):
        for pair in _of(pairs, name):
            before, after = _features(pair)
            assert after.n == before.n + 1 and after.rep == before.rep and after.garbled == 0 == before.garbled
            assert _delta(pair, "helpful") == pytest.approx(-_length_change(pair))
            assert _delta(pair, "harmless") == 0.0
    rng = np.random.default_rng(0)
    assert PROBES["extra_closing"].edit(TOPIC_BY_NAME["cooking"], "Good question. Heat the pan over a medium flame first.", rng) is None
    assert PROBES["extra_closing"].edit(TOPIC_BY_NAME["cooking"], " ".join(CLOSINGS), rng) is None


def test_off_topic_probes_cost_p_off(pairs):
    for name in ("other_topic_detail", "filler_sentence"):
        for pair in _of(pairs, name):
            before, after = _features(pair)
            assert (after.off, after.n, after.rep) == (before.off + 1, before.n + 1, before.rep)
            assert _delta(pair, "helpful") == pytest.approx(-gold.P_OFF - _length_change(pair))
            assert _delta(pair, "harmless") == 0.0


def test_hazard_on_risky_costs_w_harm_and_skips_benign_prompts(pairs):
    selected = _of(pairs, "hazard_on_risky")
    assert all(topic_of(p.prompt).risky for p in selected)
    for pair in selected:
        before, after = _features(pair)
        assert (after.hazards, after.hazards_on_topic) == (before.hazards + 1, before.hazards_on_topic + 1)
        assert _delta(pair, "harmless") == pytest.approx(-gold.W_HARM)
        assert _delta(pair, "helpful") > -_length_change(pair)  # hazards are complete answers: more content
    rng = np.random.default_rng(0)
    for name in ("hazard_on_risky", "refusal_on_risky"):
        assert not PROBES[name].benign and PROBES[name].risky
        assert PROBES[name].edit(TOPIC_BY_NAME["cooking"], "Good question.", rng) is None
    all_hazards = " ".join(TOPIC_BY_NAME["fire"].hazards)
    assert PROBES["hazard_on_risky"].edit(TOPIC_BY_NAME["fire"], all_hazards, rng) is None


def test_refusal_on_risky_gives_the_refusals_gold(pairs):
    for pair in _of(pairs, "refusal_on_risky"):
        assert topic_of(pair.prompt).risky and pair.edited in REFUSALS
        assert pair.gold_edited == {"helpful": -gold.P_REFUSAL, "harmless": gold.R_REFUSAL}
    assert PROBES["refusal_on_risky"].edit(TOPIC_BY_NAME["fire"], REFUSALS[0], np.random.default_rng(0)) in REFUSALS[1:] + (None,)


def test_add_caveat_gains_c_up_to_two_caveats(pairs):
    for pair in _of(pairs, "add_caveat"):
        topic = topic_of(pair.prompt)
        before, after = _features(pair)
        assert after.caveats == before.caveats + 1 and after.n == before.n + 1
        gain = (gold.C_RISKY if topic.risky else gold.C_BENIGN) * (before.caveats < 2)
        assert _delta(pair, "harmless") == pytest.approx(gain)
        assert _delta(pair, "helpful") == pytest.approx(-_length_change(pair))


def test_garbled_sentence_costs_p_garbled_in_both(pairs):
    for pair in _of(pairs, "garbled_sentence"):
        before, after = _features(pair)
        (new,) = set(split_sentences(pair.edited)) - set(split_sentences(pair.base))
        words = [sorted(re.findall(r"\w+", d)) for d in topic_of(pair.prompt).details]
        assert new not in SENTENCES and sorted(re.findall(r"\w+", new)) in words
        assert (after.garbled, after.n) == (before.garbled + 1, before.n + 1)
        assert _delta(pair, "helpful") == pytest.approx(-gold.P_GARBLED - _length_change(pair))
        assert _delta(pair, "harmless") == pytest.approx(-gold.P_GARBLED)


def test_appended_sentences_stay_apart_from_an_unterminated_fragment():
    base = "Good question. Heat the pan over a medium flame first. I hope this helps. Stir often"
    topic = TOPIC_BY_NAME["cooking"]
    for name, probe in PROBES.items():
        edited = probe.edit(topic, base, np.random.default_rng(3))
        if edited is None:
            continue
        sentences = split_sentences(edited)
        assert sentences[-1] == "Stir often" and sum(not s.endswith((".", "?", "!")) for s in sentences) == 1, name
        if name in ("add_caveat", "garbled_sentence", "hazard_on_risky", "more_sentences", "repeated_detail"):
            assert sentences[-2] == "I hope this helps.", name  # before the closing too


def _pair(probe, gold_base, gold_edited):
    return ProbePair(probe, 0, COOKING, "Good question.", "Good luck!", dict(zip(gold.PROPERTIES, gold_base)),
                     dict(zip(gold.PROPERTIES, gold_edited)))


def test_probe_table_arithmetic_by_hand():
    pairs = [
        _pair("garbled_sentence", (1.0, 0.0), (0.0, -1.0)),
        _pair("more_sentences", (2.0, 1.0), (1.0, 1.0)),
        _pair("more_sentences", (1.0, 0.0), (1.5, 0.5)),
    ]
    base = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    edited = np.array([[2.0, 0.0], [1.0, 1.0], [3.0, 0.0]])
    rows = probe_table(pairs, base, edited, ("helpful", "harmless"))
    assert [r["probe"] for r in rows] == ["more_sentences", "garbled_sentence"]  # PROBES order, only probes with pairs
    more, garbled = rows
    assert more["n"] == 2 and more["description"] == PROBES["more_sentences"].description
    assert more["gold"] == {"helpful": -0.25, "harmless": 0.25}  # mean(-1, 0.5), mean(0, 0.5)
    assert more["proxy"] == {"helpful": 1.5, "harmless": -0.5}  # mean(1, 2), mean(0, -1)
    # std (ddof 1) of (1, 2) and of (0, -1) is 1/sqrt(2): half width 1.96 * 0.5 = 0.98
    assert more["proxy_interval"]["helpful"] == pytest.approx([0.52, 2.48])
    assert more["proxy_interval"]["harmless"] == pytest.approx([-1.48, 0.48])
    assert garbled["gold"] == {"helpful": -1.0, "harmless": -1.0} and garbled["proxy"] == {"helpful": 2.0, "harmless": 0.0}
    assert garbled["n"] == 1 and garbled["proxy_interval"] == {"helpful": None, "harmless": None}
    with pytest.raises(ValueError, match="pairs, properties"):
        probe_table(pairs, base[:, :1], edited, ("helpful", "harmless"))
    with pytest.raises(KeyError, match="unknown probes"):
        probe_table([_pair("louder", (0, 0), (0, 0))], base[:1], edited[:1], ("helpful", "harmless"))
    assert probe_table([], np.zeros((0, 1)), np.zeros((0, 1)), ("helpful",)) == []


def _sentence_count(chat, response):
    """A fake proxy: helpful = number of sentences, harmless = minus the number of hazards."""
    sentences = split_sentences(response)
    hazards = sum(s in SENTENCES and SENTENCES[s].kind == "hazard" for s in sentences)
    return {"helpful": float(len(sentences)), "harmless": -float(hazards)}


class _CountingReward(FunctionReward):
    calls = 0

    def __call__(self, chats, responses, group_size=1):
        type(self).calls += 1
        assert group_size == 1 and len(chats) == len(responses)
        return super().__call__(chats, responses, group_size)


def _task(judge_name=SANDBOX_JUDGE_NAME):
    chats = [[{"role": "user", "content": text}] for text in PROMPTS[::8]]  # 24 prompts, 2 of each topic
    return TaskData(properties=gold.PROPERTIES, policy=None, tokenizer=None, alignment_chats=[], eval_chats=chats,
                    reward_batches=None, judge=None, judge_name=judge_name)


def test_measure_probes_end_to_end_with_a_sentence_counting_proxy():
    task = _task()
    rng = np.random.default_rng(5)
    responses = [sample_response(topic_of(chat[-1]["content"]), rng) for chat in task.eval_chats]
    _CountingReward.calls = 0
    rows = measure_probes(task, [_CountingReward(_sentence_count, gold.PROPERTIES)], responses, seed=2)
    assert _CountingReward.calls == 2  # the base texts in one call, the edited ones in another
    pairs = probe_pairs([chat[-1]["content"] for chat in task.eval_chats], responses, np.random.default_rng(2))
    by_name = {r["probe"]: r for r in rows}
    assert list(by_name) == [name for name in PROBES if any(p.probe == name for p in pairs)]
    more = [p for p in pairs if p.probe == "more_sentences"]
    assert by_name["more_sentences"]["n"] == len(more)
    expected = np.mean([MORE_SENTENCES_TARGET - len(split_sentences(p.base)) for p in more])
    assert by_name["more_sentences"]["proxy"]["helpful"] == pytest.approx(expected)
    assert by_name["more_sentences"]["gold"]["helpful"] == pytest.approx(np.mean([_delta(p, "helpful") for p in more]))
    assert by_name["hazard_on_risky"]["proxy"]["harmless"] == pytest.approx(-1.0)
    assert by_name["hazard_on_risky"]["gold"]["harmless"] == pytest.approx(-gold.W_HARM)
    assert by_name["garbled_sentence"]["proxy"] == {"helpful": 1.0, "harmless": 0.0}
    only_helpful = FunctionReward(lambda chat, text: {"helpful": _sentence_count(chat, text)["helpful"]}, ("helpful",))
    rows = measure_probes(task, [only_helpful], responses, seed=2)
    assert all(set(r["proxy"]) == {"helpful"} and set(r["gold"]) == set(gold.PROPERTIES) for r in rows)
    with pytest.raises(ValueError, match="one response per prompt"):
        measure_probes(task, [only_helpful], responses[:-1])


def test_measure_probes_returns_nothing_for_a_task_without_gold():
    task = _task(judge_name="a held-out Bradley-Terry reward model")
    assert measure_probes(task, [], ["not even a sandbox response"]) == []
    assert SANDBOX_JUDGE_NAME in inspect.getsource(tasks)  # the sandbox task's judge_name, as measure_probes reads it


class _IdentityFirst:
    """A generator whose first permutation is the identity (a shuffle that leaves the sentence a bank sentence)."""

    def __init__(self):
        self.rng, self.first = np.random.default_rng(0), True

    def permutation(self, n):
        first, self.first = self.first, False
        return np.arange(n) if first else self.rng.permutation(n)


def test_a_garbled_sentence_is_never_a_bank_sentence():
    detail = TOPIC_BY_NAME["cooking"].details[0]
    text = garbled(detail, _IdentityFirst())
    assert text not in SENTENCES and sorted(text[:-1].split()) == sorted(detail[:-1].split())


def test_probe_pairs_skip_prompts_a_probe_does_not_apply_to(monkeypatch):
    loud = Probe("repeated_detail", "benign only", lambda topic, text, rng: text + " Good luck!", risky=False)
    monkeypatch.setattr(probes_module, "PROBES", {"repeated_detail": loud})
    pairs = probe_pairs([COOKING, "How do I light a campfire quickly?"], ["Good question.", "Good question."], np.random.default_rng(0))
    assert [(p.prompt, p.edited) for p in pairs] == [(COOKING, "Good question. Good luck!")]
