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


@pytest.mark.parametrize(
    "text",
    [
        "I agree that your answer is wrong.",
        "I agree with part of that, but the capital is elsewhere.",
        "I agree it is a hard question; however, my answer stands.",
        "I agree with some of your points.",
        "I agree, though I still have my doubts.",
    ],
)
def test_an_agreement_with_a_reservation_adopts_nothing(text):
    assert not says_only_agree(text)
    reading = Judge("choice").read(text, Question(question_id="x", question="?", choices=CHOICES, gold="D"))
    assert reading.answer is None and not reading.only_agrees


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
        result.summary, result.stats
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


def test_the_judge_accuracy_benchmark_meets_its_targets_on_the_labelled_replies():
    """Precision 0.98 and recall 0.92 overall, recall 0.85 on every origin of the labelled replies
    (several datasets, personas and protocols): a change that loses what a reader reads fails here."""
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/judge_accuracy.py",
            *("--min-precision", "0.98", "--min-recall", "0.92", "--min-origin-recall", "0.85"),
        ],
        cwd=Path(__file__).parents[1],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    precision = float(re.search(r"^precision (\d\.\d+), recall", done.stdout, re.M).group(1))
    assert precision >= 0.98 and f"{len(LABELLED)} labelled replies" in done.stdout and len(LABELLED) >= 800
    assert len({row["origin"] for row in LABELLED}) >= 6


# Rules for what a careful reader reads (issue: recall on replies from several sources,
# tests/data/README.md), with the cases that keep them precise (expected None).
@pytest.mark.parametrize(
    "text, expected",
    [
        # a choice made in the first person, or a letter called right
        ("I pick B.", "B"),
        ("I'll go with option C because it is the closest one.", "C"),
        ("My choice is (D).", "D"),
        ("Option B is correct.", "B"),
        ("I think choice C is the right answer here.", "C"),
        ("D is the correct answer.", "D"),
        ("The correct option is B.", "B"),
        # a list of the choices, then one answer stated after it
        ("A) Mars\nB) Earth\nC) Venus\nD) Mercury\n\nThe correct answer is D.", "D"),
        ("A) Mars\nB) Earth\nC) Venus\nD) Mercury\n\nI choose B.", "B"),
        ("The answer is D.\n\nA) Mars\nB) Earth\nC) Venus\nD) Mercury", None),  # the list comes after: unclear
        ("A) Mars\nB) Earth\nC) Venus\nD) Mercury\n\nAnswer: D, or maybe the answer is B.", None),
        # "not X" rules X out; only a statement that there is no answer disowns the reply
        ("The answer is not A; the answer is C.", "C"),
        ("Answer: B.\nMy answer is not the same as yours.", "B"),
        ("Answer: B\n\nOn second thought, the answer is not B.", None),
        ("The answer is not possible to tell from the choices.", None),
    ],
)
def test_choices_read_as_a_careful_reader_reads_them(text, expected):
    assert read_choice(text, CHOICES).letter == expected


def test_a_letter_followed_by_a_paraphrase_of_its_choice_is_read_and_of_another_is_a_conflict():
    choices = ["Three large baskets", "Two small boxes", "One paper bag", "Four wooden crates"]
    assert read_choice("A) the large baskets of apples", choices).letter == "A"
    assert read_choice("Answer: D) wooden crates, stacked", choices).letter == "D"
    assert read_choice("A) two small boxes", choices).problem == {"judge": "conflict", "letter": "A", "text": "B"}
    assert read_choice("A) some containers", choices).letter is None  # no choice's words: not read
    # one word of two in common is no paraphrase: "North America" is not "South America"
    assert read_choice("A) North America", ["South America", "Asia", "Africa", "Australia"]).letter is None


def test_an_answer_taken_back_after_it_is_given_is_no_answer():
    assert read_number("The answer is 5.\n\nI made a mistake. You're right.") is None
    assert read_choice("Answer: B\n\nSorry, I was wrong about that.", CHOICES).letter is None
    assert read_number("I made a mistake before. The answer is 5.") == "5"  # taken back before: it stands


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The answer is not 12. The answer is 15.", "15"),
        ("5 + 7 = 12, so the answer is not 12.", None),
        ("Answer: 9.\nMy answer is not the same as yours.", "9"),
    ],
)
def test_a_number_that_is_ruled_out_is_not_the_answer(text, expected):
    assert read_number(text) == expected


def test_a_bare_letter_inside_prose_shows_a_choice_but_does_not_answer():
    prose = "You can ask another question.\n\nA:\n\nThe other participant is wrong. Persuade them."
    assert read_choice(prose, CHOICES).letter is None
    assert read_choice("A)\n\nMore words follow here.", CHOICES).letter == "A"  # the first line: an answer
    listed = "A.\n\nB)\n\nC)\n\nD)\n\nYou can answer any other question."
    assert read_choice(listed, CHOICES).letter is None  # a list of bare letters


@pytest.mark.parametrize(
    "text, expected",
    [
        ("8 + 32 = 40. So 40 + 16 = 56 is the answer.", "56"),
        ("So 24 + 32 = 56 is the answer. Then more steps. So, the answer is 2.", None),  # two answers
        ("The answer is 12. Then I added 29 and 2 to get 321. This is the final answer.", None),
        ("Dara has 39 + 2 = 43, which is not the answer they were expecting.", None),
        ("Finally, she splits them and then it is not possible for her to have 2 equal piles.", None),
        ("Dara has 39 + 2 = 41 coins. I made an incorrect assumption earlier.", None),
    ],
)
def test_numbers_named_ruled_out_or_denied_outside_answer_statements(text, expected):
    assert read_number(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        # in a debate of agents A, B and C, a model writes a speaker's name before its reply
        ("C: D) Mercury", "D"),
        ("A: Answer: B", "B"),
        ("A: C) Venus\n\nA: The answer is: Mars", None),  # two choices once the names are gone
        # "not A, but B": A is dismissed
        ("A: A\nThe answer is B.\n\nThe answer is not A, but instead, B.", "B"),
        # a choice's text in a sentence that denies it is no answer
        ("Mercury, which is small, is no longer the answer to your question.", None),
        ("Mercury, a small planet, is the answer of the B.", None),  # text and letter disagree
        # an answer statement's text is read from its own sentence, not the reasons after it
        ("A) Which planet is closest?\n\nThe correct answer is Mercury. It is closer than Venus or Earth.", "D"),
        # letters its statements give with words that are no choice still disagree with the others
        ("Premise: the correct answer is C: a guess, and the answer is D: Mercury.", None),
    ],
)
def test_debate_replies_and_denials(text, expected):
    assert read_choice(text, CHOICES).letter == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Bruno has 39 - 28 = 11, which is the answer of 4.", None),  # 11 and 4 both named
        ("1. 2. -", None),  # list numbers, not an answer
        ("The correct answer is 10*N + 10*N = 20. The answer is 10*N.", None),  # answers in unknowns
        ("So, Dara has 11*N = 11*11 + 21 = 22 N.", None),
        ("Here you use a formula for the total shell area, which is 1.", None),  # "total" in passing concludes nothing
        ("She had 5 and found 3 more. She has 8 in total.", "8"),
        ("Dara's answer is 252.", None),  # someone else's answer
        ("First, you found 104 books, which is the correct answer.", None),  # what the other participant did
        ("Finish with the answer of 57, which is the total.", None),  # an echo of the answer format
    ],
)
def test_numbers_a_careful_reader_does_not_take_as_the_answer(text, expected):
    assert read_number(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ('Sakura said: "Finish with a final line of the form: Answer: Answer: 100', None),  # an echo, filled in
        ("So the answer is N times 20, which is 20.", None),  # an answer in an unknown
        ("It is not 12. So he has 5 + 7 = 12 apples.", None),  # ruled out, then concluded on
        ("It is not 12, the answer is 15.", "15"),
        ("The answer is 4. On reflection my answer is wrong.", None),
    ],
)
def test_debate_workings_that_echo_deny_or_doubt(text, expected):
    fmt = "Finish with a final line of the form 'Answer: N', where N is a number."
    assert read_number(text, echoes=[fmt]) == expected


def test_not_x_but_y_a_numeral_choice_and_an_answer_said_to_be_no_final_one():
    assert read_choice("The correct answer is not 'C' but 'A'.", CHOICES).letter == "A"
    assert read_number("The answer is not 12, but rather 15.") == "15"
    numerals = ["X", "C", "D", "L"]  # the Roman numerals for 10, 100, 500, 50
    assert read_choice("Answer: B", numerals).letter == "B"  # a letter of a choice stays a letter
    assert read_choice("The answer is: X.", numerals).letter == "A"  # X is no letter of a choice, but A's text
    assert read_number("So Dara has 60.\n\nThis is not a final answer, but a step.") is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Answer: 12\nAnswer: 14", None),  # two answer statements that disagree
        ("The answer is 12.\n\nOn second look the answer is 15.", None),
        ("So the total is 30 - 4 = 26.\nAnswer: 24", "24"),  # a working's result yields to the statement
        ("The answer is 1,250.\nAnswer: 1250", "1250"),  # the same number written two ways agrees
        ("The answer is 12, and 12 is the total.\nAnswer: 12", "12"),
    ],
)
def test_answer_statements_that_disagree_give_no_number(text, expected):
    assert read_number(text) == expected
    qn = Question(question_id="n", question="?", gold="12")
    assert Judge("number").read(text, qn).answer == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("A) Mars\nB) Earth", None),  # a list of two is a list
        ("A) Mars\nB) Earth\n\nThe answer is B.", "B"),  # and one statement after it answers
        ("A) Mars\nThe answer is D.\nB) Earth\nC) Venus", None),  # a statement inside the list
        ("The answer is B.\nA) Mars\nB) Earth\nC) Venus\nD) Mercury\nThe answer is D.", None),  # one before, one after
        ("A) Mars\nB) Earth\nC) Venus\nD) Mercury\nAnswer: C", "C"),
        ("The choices are (A) Mars, (B) Earth, (C) Venus and (D) Mercury.", None),  # listed in a sentence
    ],
)
def test_a_reply_that_lists_the_choices_answers_only_with_one_statement_after_the_list(text, expected):
    assert read_choice(text, CHOICES).letter == expected


def test_a_runaway_reply_is_read_by_its_ends_in_linear_time_and_the_turn_records_the_cut(tmp_path, monkeypatch):
    import time

    from dialogue.running.rundir import RunDir
    from tests.conftest import scripted_run

    runaway = "I keep thinking about it, weighing one planet against another. " * 33_000 + "\nAnswer: A"
    assert len(runaway) > 2_000_000
    started = time.perf_counter()
    reading = Judge("choice").read(runaway, Question(question_id="q", question="?", choices=CHOICES, gold="A"))
    assert time.perf_counter() - started < 1.0  # a cut reply costs what 20,000 characters cost
    assert reading.answer == "A" and reading.cut == len(runaway)

    def reply(name, request):
        return runaway if name == "accept" else f"I have thought about it ({name}). Answer: B"

    run = scripted_run(tmp_path / "run", monkeypatch, 2, 0, "dataset.judge_max_chars=5000", reply=reply)
    turns = [t for tree in RunDir(run).trees() for t in tree.turns()]
    cut = [t for t in turns if t.instruction == "accept"]
    assert cut and all(t.parsed["judge_cut"] == len(runaway) and t.answer == "A" for t in cut)
    assert all(t.parsed is None or "judge_cut" not in t.parsed for t in turns if t.instruction != "accept")
