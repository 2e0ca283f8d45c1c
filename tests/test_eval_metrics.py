"""Evaluation metrics on hand-built records whose values are known, degenerate cases included."""

import pytest

from dialogue.evaluation.metrics import (
    ARE_YOU_SURE, ASSESSMENT, BALANCED, CRITIQUE_VERDICTS, REVISION, TEAM_DEBATE, Challenged, Debated,
    Misinformed, Persuaded, Revised, Scored, Verdict, metrics_of, misinformation, turns_to_flip,
)
from dialogue.evaluation.stats import estimate


def one_each(records):
    return [[r] for r in records]


def values(found):
    return {name: e.value for name, e in found.items()}


def test_are_you_sure_accuracies_and_flip_rates():
    records = [Challenged(True, True), Challenged(True, False), Challenged(True, None), Challenged(False, True),
               Challenged(None, False)]
    got = values(metrics_of(one_each(records), ARE_YOU_SURE))
    assert got == pytest.approx({"accuracy_before": 3 / 5, "accuracy_after": 2 / 5,
                                 "flip_correct_to_wrong": 2 / 3, "flip_wrong_to_correct": 1 / 2})


def test_flip_from_correct_is_undefined_when_nothing_was_correct_at_first():
    got = metrics_of(one_each([Challenged(False, True), Challenged(None, None)]), ARE_YOU_SURE)
    assert got["flip_correct_to_wrong"].value is None and got["flip_correct_to_wrong"].n == 0
    assert got["flip_wrong_to_correct"].value == 0.5 and got["accuracy_before"].value == 0.0


def test_balanced_accuracy_is_the_mean_of_resisting_and_accepting():
    records = [Persuaded("resist", True), Persuaded("resist", False), Persuaded("resist", True),
               Persuaded("accept", True), Persuaded("accept", None)]
    got = values(metrics_of(one_each(records), BALANCED))
    assert got == pytest.approx({"accuracy_misleading": 2 / 3, "accuracy_correct_persuasion": 1 / 2,
                                 "balanced_accuracy": (2 / 3 + 1 / 2) / 2})


def test_balanced_accuracy_without_misleading_persuasion_is_undefined_not_zero():
    got = metrics_of(one_each([Persuaded("accept", True), Persuaded("accept", False)]), BALANCED)
    assert got["accuracy_misleading"].value is None and got["balanced_accuracy"].value is None
    assert got["accuracy_correct_persuasion"].value == 0.5


def test_misinformation_rate_at_k_counts_only_questions_first_answered_correctly():
    records = [Misinformed(True, 1), Misinformed(True, 3), Misinformed(True, None), Misinformed(True, 2),
               Misinformed(False, 1), Misinformed(None, None)]
    got = values(metrics_of(one_each(records), misinformation(3)))
    assert got == pytest.approx({"MR@1": 1 / 4, "MR@2": 2 / 4, "MR@3": 3 / 4})
    assert turns_to_flip(records) == {1: 1, 2: 1, 3: 1}
    none_right = metrics_of(one_each([Misinformed(False, 1)]), misinformation(2))
    assert all(e.value is None for e in none_right.values())


def test_team_accuracy_per_order_and_order_dependence():
    records = [Debated(1, (True, False), (True, True)), Debated(1, (False, False), (False, True)),
               Debated(2, (True, True), (False, False)), Debated(2, (True, False), (True, False))]
    got = values(metrics_of([[records[0], records[2]], [records[1], records[3]]], TEAM_DEBATE))
    assert got == pytest.approx({"team_accuracy_before_order1": 0.25, "team_accuracy_after_order1": 0.75,
                                 "team_accuracy_before_order2": 0.75, "team_accuracy_after_order2": 0.25,
                                 "order_dependence": 0.5})


def test_assessment_counts_pairs_in_the_right_order():
    got = values(metrics_of(one_each([Scored(-1.0, -2.0), Scored(-3.0, -2.0), Scored(-1.0, -1.5)]), ASSESSMENT))
    assert got["pairs_ordered"] == pytest.approx(2 / 3)


def test_critique_f1_has_incorrect_as_the_positive_class():
    records = [Verdict("answer", True, True), Verdict("answer", True, False), Verdict("answer", False, True),
               Verdict("answer", False, False), Verdict("answer", True, None),
               Verdict("step", True, True), Verdict("step", False, False)]
    got = values(metrics_of(one_each(records), CRITIQUE_VERDICTS))
    # answer: tp 1, fp 1, fn 2 (one said correct, one unreadable) -> 2 / (2 + 1 + 2)
    assert got == pytest.approx({"answer_f1": 2 / 5, "step_f1": 1.0})
    nothing_wrong = metrics_of(one_each([Verdict("answer", False, False)]), CRITIQUE_VERDICTS)
    assert nothing_wrong["answer_f1"].value is None and nothing_wrong["step_f1"].value is None


def test_correction_gain_is_fix_rate_minus_break_rate():
    records = [Revised(False, True), Revised(False, False), Revised(True, False), Revised(True, True),
               Revised(True, True), Revised(None, True)]
    got = values(metrics_of(one_each(records), REVISION))
    assert got == pytest.approx({"fix_rate": 2 / 3, "break_rate": 1 / 3, "correction_gain": 1 / 3})
    only_right = values(metrics_of(one_each([Revised(True, True)]), REVISION))
    assert only_right["fix_rate"] is None and only_right["correction_gain"] == 0.0


def test_bootstrap_interval_contains_the_value_narrows_with_data_and_resamples_whole_questions():
    def mean(rs):
        return (sum(rs) / len(rs), len(rs)) if rs else None

    small = estimate([[1], [0], [1], [0]], mean, seed=1)
    large = estimate([[1], [0]] * 200, mean, seed=1)
    assert small.low <= small.value <= small.high and large.low <= large.value <= large.high
    assert (large.high - large.low) < (small.high - small.low)
    assert estimate([[1], [0], [1], [0]], mean, seed=1) == small  # seeded
    # a question's two rows move together: every resample mean stays a multiple of 1/2 questions' rows
    tied = estimate([[1, 1], [0, 0]], mean, resamples=200, seed=0)
    assert {tied.low, tied.high} <= {0.0, 0.5, 1.0}
    single = estimate([[1, 0, 1]], mean)
    assert single.low == single.high == single.value == pytest.approx(2 / 3)


def test_are_you_sure_protocol_trees_give_the_known_flip_rates(tmp_path, monkeypatch):
    """A scripted model: right first on even-numbered questions; after the challenge it switches
    to a wrong answer on questions 0 mod 4 and to the right one on odd questions."""
    from dialogue.evaluation.records import challenged
    from dialogue.questions import load_questions
    from dialogue.rundir import RunDir
    from dialogue.simulate import simulate
    from tests.conftest import ScriptedBackend, instruction_of, simulate_config

    config = simulate_config([f"out={tmp_path}", "protocol=are_you_sure", "dataset.limit=8", "progress=false"])
    questions = load_questions(config.dataset).questions
    index = {q.question: i for i, q in enumerate(questions)}
    gold = {q.question: q.gold for q in questions}

    def rule(request):
        text = next(t for role, t in request.messages if role == "user")
        q = next(q for q in index if text.startswith(q))
        wrong = "A" if gold[q] != "A" else "B"
        if instruction_of(request, config.protocol.instructions) == "answer":
            return f"Answer: {gold[q] if index[q] % 2 == 0 else wrong}"
        assert "Are you sure" in " ".join(t for _, t in request.messages)  # the challenge was heard
        return f"Answer: {wrong if index[q] % 4 == 0 else gold[q]}"

    monkeypatch.setattr("dialogue.simulate.make_backend", lambda *a, **k: ScriptedBackend(rule))
    simulate(config, tmp_path)
    trees = list(RunDir(tmp_path).trees())
    assert [len(t) for t in trees] == [3] * 8 and all(t.turn("0.0").gen is None for t in trees)
    from dialogue.summary import summarize

    assert summarize(trees).first_answer_accuracy == {"A": 0.5}  # the challenger's fixed words answer nothing
    got = values(metrics_of([[challenged(t)] for t in trees], ARE_YOU_SURE))
    # questions 0,2,4,6 right first; 0,4 flip to wrong; 1,3,5,7 wrong first and all fixed
    assert got == pytest.approx({"accuracy_before": 0.5, "accuracy_after": 0.75, "flip_correct_to_wrong": 0.5,
                                 "flip_wrong_to_correct": 1.0})
