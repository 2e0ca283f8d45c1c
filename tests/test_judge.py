import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agents.errors import AgoraError
from dialogue.core.judge import Judge, extract_alias, read_choice, read_number, says_only_agree
from dialogue.core.questions import Question

CHOICES = ["Mars", "Earth", "Venus", "Mercury"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Answer: D", "D"),
        ("I think the answer is (B).", "B"),
        ("The answer is **C**", "C"),
        ("Final answer: A) Mars", "A"),
        ("(D)", "D"),
        ("B) Earth", "B"),
        ("D", "D"),
        ("Mercury, the closest planet to the Sun.", "D"),  # text without a letter
        ("It is obviously Mercury, the closest planet to the Sun.", None),  # inside a sentence: not read
        ("Answer: Venus", "C"),
        ("Mars or Earth, hard to say.", None),  # two choices named: no answer
        ("A) Mars\n\nB) Earth", None),  # two letters offered
        ("I am not sure.", None),
        ("Answer: D\n\nLater: the answer is B", None),  # two answers: neither is the answer
        ("The closest planet is Mercury.", "D"),  # a choice's text where an answer stands
        ("Earth is warm, but the one that is closest to the Sun is Mercury.", None),  # two choices at its edges
        ("Unlike Venus, the planet is small and dusty; I would say it depends.", None),  # in passing
        ("A circle\n\nB) Earth", "B"),  # "A circle" is words, not the letter A
    ],
)
def test_read_choice(text, expected):
    assert read_choice(text, CHOICES).letter == expected


def test_letters_beyond_the_choices_are_no_answer():
    assert read_choice("Answer: E", ["yes", "no"]).letter is None
    assert read_choice("Answer: E", ["yes", "no"]).problem == {"judge": "not a choice", "letter": "E"}
    assert read_choice("A bit unclear, but the answer is B", ["yes", "no"]).letter == "B"


@pytest.mark.parametrize(
    "text, problem",
    [
        ("A) Venus", {"judge": "conflict", "letter": "A", "text": "C"}),  # the letter is Mars, the text Venus
        ("The answer is: B) Mercury, the smallest.", {"judge": "conflict", "letter": "B", "text": "D"}),
        ("E) Mercury", {"judge": "conflict", "letter": "E", "text": "D"}),  # a letter that is no choice
        ("Mercury, B.", {"judge": "conflict", "letter": "B", "text": "D"}),
        ("C) Venus\n\nActually D) Mercury.", {"judge": "several", "letters": ["C", "D"]}),  # two choices
        ("A) Mars\nB) Earth\nC) Venus\nD) Mercury", {"judge": "several", "letters": ["A", "B", "C", "D"]}),
        ("Answer: A\n\nThe answer to the question is Venus.", {"judge": "several", "letters": ["A", "C"]}),
        ("Mars, C.", {"judge": "conflict", "letter": "C", "text": "A"}),
    ],
)
def test_replies_that_contradict_themselves_get_no_answer_and_say_why(text, problem):
    found = read_choice(text, CHOICES)
    assert found.letter is None and found.problem == problem


def test_a_conflict_can_be_settled_by_the_letter_or_the_text_and_is_recorded_either_way():
    q = Question(question_id="x", question="?", choices=CHOICES, gold="D")
    conflict = {"judge": "conflict", "letter": "A", "text": "C"}
    for on_conflict, answer in (("none", None), ("letter", "A"), ("text", "C")):
        reading = Judge("choice", on_conflict=on_conflict).read("A) Venus", q)
        assert reading.answer == answer and reading.problem == conflict and not reading.only_agrees
    # a letter that is no choice cannot be the answer, whatever the setting
    assert Judge("choice", on_conflict="letter").read("E) Mercury", q).answer is None


def test_an_echoed_answer_format_is_not_an_answer():
    fmt = "Finish with a final line of the form 'Answer: X', where X is the letter of your choice."
    q = Question(question_id="x", question="?", choices=CHOICES, gold="D")
    judge = Judge("choice", echoes=[fmt])
    # the instruction repeated with a letter in it, word for word or shortened
    assert judge.read("Finish with a final line of the form 'Answer: D'", q).answer is None
    assert judge.read("I will finish with a final line of the form 'Answer: B', as asked.", q).answer is None
    assert judge.read(f"Hmm.\n\n{fmt.replace('X', 'C', 1)}", q).answer is None
    # an answer beside the echo is still read
    assert judge.read(f"Mercury is closest.\n\n{fmt}", q).answer == "D"
    assert judge.read(f"{fmt}\nAnswer: B", q).answer == "B"
    assert Judge("choice").read("Finish with a final line of the form 'Answer: D'", q).answer == "D"  # no echo given
    number = Judge("number", echoes=["Finish with a final line of the form 'Answer: N', where N is a number."])
    qn = Question(question_id="n", question="?", gold="12")
    assert number.read("Finish with a final line of the form 'Answer: 12'", qn).answer is None
    assert number.read("3 times 4 is 12.\nAnswer: 12", qn).answer == "12"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("So she has 42 apples.\nAnswer: 42", "42"),
        ("3 + 4 = 7, times 2 is 14", "14"),
        ("Answer: 1,250 coins", "1250"),
        ("The answer is 12.0", "12"),
        ("no idea", None),
    ],
)
def test_read_number(text, expected):
    assert read_number(text) == expected


def test_extract_alias_matches_normalised_aliases():
    q = Question(
        question_id="x",
        question="Who wrote Hamlet?",
        gold="William Shakespeare",
        aliases=["William Shakespeare", "Shakespeare"],
    )
    assert extract_alias("Answer: shakespeare!", q) == "William Shakespeare"
    assert extract_alias("I believe it was the Bard, Shakespeare.", q) == "William Shakespeare"
    assert extract_alias("Answer: Christopher Marlowe", q) == "christopher marlowe"
    assert extract_alias("I don't know", q) is None


def test_agreement_only():
    assert says_only_agree("I agree with you.")
    assert says_only_agree("OK, I now agree.")
    assert not says_only_agree("We agree to disagree.")
    assert not says_only_agree("I disagree.")


def test_judge_reads_and_marks_correctness():
    q = Question(question_id="x", question="?", choices=CHOICES, gold="D", aliases=["Mercury"])
    judge = Judge("choice")
    assert judge.read("Answer: D", q).answer == "D"
    assert judge.is_correct("D", q) is True
    assert judge.is_correct("A", q) is False
    assert judge.is_correct(None, q) is None
    reading = judge.read("I agree with you.", q)
    assert reading.answer is None and reading.only_agrees

    numeric = Judge("number")
    qn = Question(question_id="n", question="?", gold="1,250")
    assert numeric.is_correct("1250", qn) is True
    assert numeric.is_correct("1251", qn) is False


def test_the_run_summary_and_the_card_count_unreadable_and_conflicting_turns(tmp_path, monkeypatch):
    """A scripted run: A answers right; B, under `resist`, names another letter with the right
    choice's text (a conflict) and, under `accept`, says nothing readable."""
    import json

    from dialogue.core.questions import load_questions
    from dialogue.mining.export import MineConfig, mine
    from dialogue.running.rundir import RunDir
    from dialogue.running.simulate import simulate
    from dialogue.running.summary import format_summary
    from tests.conftest import ScriptedBackend, instruction_of, simulate_config

    config = simulate_config([f"out={tmp_path / 'run'}", "dataset.limit=4", "progress=false"])
    questions = load_questions(config.dataset).questions

    def rule(request):
        q = next(q for q in questions if request.messages[1][1].startswith(q.question))
        other = "A" if q.gold != "A" else "B"
        name = instruction_of(request, config.protocol.instructions)
        if name == "resist":
            return f"{other}) {q.choices['ABCD'.index(q.gold)]}"
        if name == "accept":
            return "I cannot say."
        return f"Answer: {q.gold if name == 'neutral' else other}"

    monkeypatch.setattr("dialogue.running.simulate.make_backend", lambda *a, **k: ScriptedBackend(rule))
    result = simulate(config, tmp_path / "run")
    # per tree, B speaks 1 + 6 times under each of resist and accept; A's 7 turns are all read
    assert result.summary.conflicts == {"B": 4 * 7} and result.summary.unreadable == {"B": 4 * 14}
    assert "answers the judge could not read: B 56   letter/text conflicts: B 28" in format_summary(
        result.summary, 0, 0.0, 0
    )
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["counts"]["conflicts"] == {"B": 28} and manifest["counts"]["unreadable"] == {"B": 56}
    tree = next(RunDir(tmp_path / "run").trees())
    resist = tree.turn("0.0")
    gold = tree.question.gold
    assert resist.answer is None and resist.parsed == {
        "judge": "conflict",
        "letter": "A" if gold != "A" else "B",
        "text": gold,
    }
    with pytest.raises(AgoraError, match="no train rows"):  # every B reply was unreadable: no pair to train on
        mine(MineConfig(run=[str(tmp_path / "run")], out=str(tmp_path / "data")))
    card = json.loads((tmp_path / "data" / "card.json").read_text())
    assert card["judge"] == {"unreadable": {"B": 56}, "conflicts": {"B": 28}}
    assert card["sources"][0]["conflicts"] == {"B": 28}


LABELLED = [
    json.loads(line) for line in (Path(__file__).parent / "data" / "judge_labels.jsonl").read_text().splitlines()
]


def test_real_replies_whose_letter_and_text_disagree_get_no_answer_and_are_counted_as_conflicts():
    fmt = "Finish with a final line of the form 'Answer: X', where X is the letter of your choice."
    conflicts = [r for r in LABELLED if r["note"].startswith("conflict")]
    readings = [
        Judge("choice", echoes=[fmt]).read(
            r["reply"],
            Question(question_id=r["source"], question=r["question"], choices=r["choices"], gold=r["gold"]),
            r["finish_reason"] == "length",
        )
        for r in conflicts
    ]
    assert len(conflicts) > 60 and all(reading.answer is None for reading in readings)
    recorded = [reading for reading in readings if (reading.problem or {}).get("judge") == "conflict"]
    # the rest are conflicts a reader sees inside a sentence ("A: The civilization known as the Egyptians")
    assert len(recorded) >= 0.95 * len(conflicts)


def test_the_judge_accuracy_benchmark_meets_its_precision_on_the_labelled_replies():
    done = subprocess.run(
        [sys.executable, "benchmarks/judge_accuracy.py", "--min-precision", "0.98"],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    precision = float(re.search(r"^precision (\d\.\d+), recall", done.stdout, re.M).group(1))
    assert precision >= 0.98 and "470 labelled replies" in done.stdout
