"""Few-shot examples chosen and pruned for a budget (the CoT-Influx row's baseline)."""

import re

import pytest

from agents.errors import AgoraError
from dialogue.core.questions import DatasetConfig, Question, load_questions
from dialogue.evaluation.fewshot import FewShotConfig, choose, prune, solved
from dialogue.evaluation.run import evaluate
from tests.test_eval import asked, eval_config, scripted_models, values

POOL = [
    Question(question_id="p1", question="Which planet is the hottest?", choices=["Mars", "Venus"], gold="B"),
    Question(question_id="p2", question="Which river is the longest?", choices=["Nile", "Thames"], gold="A"),
    Question(
        question_id="p3", question="Which planet has rings that are the widest?", choices=["Saturn", "Mars"], gold="A"
    ),
]


def test_examples_are_the_most_similar_questions_within_the_count_and_the_budget():
    question = Question(
        question_id="q", question="Which planet is the coldest?", choices=["Neptune", "Venus"], gold="A"
    )
    found = choose(question, POOL, FewShotConfig(count=2, budget_words=1000), seed=0)
    # p1 shares "planet", "hottest" not; p3 shares "planet"; ties go by id; p2 shares nothing
    assert [e.splitlines()[0] for e in found] == ["Question: planet hottest?", "Question: planet rings widest?"]
    whole = choose(question, POOL, FewShotConfig(count=1, budget_words=1000, prune=False), seed=0)
    assert whole == [solved(POOL[0])] == ["Question: Which planet is the hottest?\nA) Mars\nB) Venus\nAnswer: B"]
    tight = choose(question, POOL, FewShotConfig(count=3, budget_words=len(found[0].split())), seed=0)
    assert tight == found[:1]  # the next example would pass the budget
    assert choose(POOL[0], POOL, FewShotConfig(count=3), seed=0)[0] != solved(POOL[0])  # never the question itself


def test_pruning_drops_filler_words_and_keeps_numbers_choices_and_the_answer():
    example = "Question: Sam has 12 apples and then he is given 5 more.\nA) Mars\nStep 1: 12 + 5 = 17\nAnswer: 17"
    assert prune(example) == "Question: Sam 12 apples given 5 more.\nA) Mars\nStep 1: 12 + 5 = 17\nAnswer: 17"


def test_an_evaluation_with_examples_gives_them_from_the_train_split(tmp_path, monkeypatch):
    """A scripted model that answers right only when it was shown worked examples."""
    everything = DatasetConfig(name="general_knowledge")
    questions = {q.question: q for q in load_questions(everything).questions}
    shown_examples = []

    def rule(request):
        first = asked(request)
        examples = re.findall(r"^Question: (.+)$", first, re.M)
        shown_examples.extend(examples)
        text = first.split("Now this question:\n", 1)[-1]
        question = next(q for t, q in questions.items() if text.startswith(t))
        wrong = next(letter for letter in "ABCD" if letter != question.gold)
        return f"Answer: {question.gold if examples else wrong}"

    scripted_models(monkeypatch, {"m": rule})
    base = ["suite=are_you_sure", "model=m", "dataset.limit=5"]
    plain = evaluate(eval_config(tmp_path / "plain", *base), log=lambda *a, **k: None)
    shots = evaluate(eval_config(tmp_path / "shots", *base, "fewshot.count=2"), log=lambda *a, **k: None)
    assert values(plain, "are_you_sure")["accuracy_before"] == 0.0
    assert values(shots, "are_you_sure")["accuracy_before"] == 1.0
    train = everything.model_copy(update={"split": "train"})
    # the examples are pruned: find each one's question by its pruned text
    by_text = {prune(f"Question: {q.question}")[10:]: q.question_id for q in load_questions(everything).questions}
    assert shown_examples and all(train.selects(by_text[e]) for e in shown_examples)
    # other few-shot settings grow a run of their own, never reusing turns made under others
    assert [p.name for p in (tmp_path / "shots" / "are_you_sure").glob("run*")][0].startswith("run-fewshot-")

    with pytest.raises(AgoraError, match="must come from another split than the questions evaluated"):
        eval_config(tmp_path / "x", *base, "fewshot.count=2", "dataset.split=train")
