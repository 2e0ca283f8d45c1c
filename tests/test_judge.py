import pytest

from dialogue.judge import Judge, extract_alias, extract_choice, extract_number, says_only_agree
from dialogue.questions import Question

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
        ("It is obviously Mercury, the closest planet to the Sun.", "D"),  # text without a letter
        ("Answer: Venus", "C"),
        ("Mars or Earth, hard to say.", None),  # two choices named: no answer
        ("A) Mars\n\nB) Earth", None),  # two letters offered
        ("I am not sure.", None),
        ("Answer: D\n\nLater: the answer is B", "B"),  # the last statement wins
    ],
)
def test_extract_choice(text, expected):
    assert extract_choice(text, CHOICES) == expected


def test_extract_choice_ignores_letters_beyond_the_choices():
    assert extract_choice("Answer: E", ["yes", "no"]) is None
    assert extract_choice("A bit unclear, but the answer is B", ["yes", "no"]) == "B"


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
def test_extract_number(text, expected):
    assert extract_number(text) == expected


def test_extract_alias_matches_normalised_aliases():
    q = Question(question_id="x", question="Who wrote Hamlet?", gold="William Shakespeare",
                 aliases=["William Shakespeare", "Shakespeare"])
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
