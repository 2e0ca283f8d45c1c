"""Solutions as numbered steps: how a solution's text divides into steps, and, for generated
arithmetic problems, which steps are true.

A step starts at a line "Step N: ..." (or "Step N.", or a numbered line "N. ..."). Words before the first step belong to
it, and the answer line after the last step belongs to the last, so the steps joined with
newlines give the text back. A reply with no numbered step is one step.
"""

from __future__ import annotations

import math
import operator
import random
import re

from dialogue.core.questions import Question, Step

STEP_LINE = re.compile(r"^[ \t*#]*(?:step\s*)?\d+\s*[:.)](?!\d)", re.IGNORECASE | re.MULTILINE)
SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


def split_steps(text: str) -> list[str]:
    """The steps of a solution, in order; "\\n".join of them is the text, stripped."""
    text = text.strip()
    if not text:
        return []
    starts = [m.start() for m in STEP_LINE.finditer(text)][1:]  # words before step 1 are part of it
    cuts = [0, *starts, len(text)]
    return [text[a:b].strip() for a, b in zip(cuts, cuts[1:], strict=False) if text[a:b].strip()]


def join_steps(steps: list[str]) -> str:
    return "\n".join(steps)


_RESULT = re.compile(r"=\s*(-?\d+(?:\.\d+)?)")


def stated_result(step: str) -> float | None:
    """The number a step says it arrives at: the number after its last "=", or None."""
    found = _RESULT.findall(step)
    return float(found[-1]) if found else None


def step_truth(question: Question, steps: list[str]) -> list[bool] | None:
    """For a generated arithmetic problem, whether each step states the problem's true value
    after the operation of the same number; None when the truth is unknown: the question is not
    generated, or the solution has another number of steps than the problem has operations, or
    a step states no result (then steps cannot be matched to operations)."""
    if question.worked is None or len(steps) != len(question.worked):
        return None
    results = [stated_result(step) for step in steps]
    if any(r is None for r in results):
        return None
    return [r == op.after for r, op in zip(results, question.worked, strict=True)]


def worked_text(worked: list[Step], wrong_at: int | None, rng: random.Random) -> tuple[str, tuple[bool, ...]]:
    """A solution of one line per operation, and the truth of each line. At `wrong_at` the
    result is off by a seeded positive amount, and every later step carries the wrong value on;
    the amount keeps later divisions exact, so every line is arithmetic a reader can check."""
    value, lines, truth = worked[0].before, [], []
    for i, step in enumerate(worked):
        result = step.apply(value)
        if i == wrong_at:
            later_divisors = [s.n for s in worked[i + 1 :] if s.op == "div"]
            result += math.prod(later_divisors) * rng.randint(1, 3)
        lines.append(f"Step {i + 1}: {value} {SYMBOLS[step.op]} {step.n} = {result}")
        truth.append(result == step.after)
        value = result
    lines[-1] += f"\nAnswer: {value}"
    return "\n".join(lines), tuple(truth)


_NUMBER = r"-?\d+(?:,\d{3})*(?:\.\d+)?"
# "12 + 5 = 17", "3 x 4 x 2 = 24", "60 / 5 - 2 = 10": numbers joined by operators, then "=" and a number
_EQUATION = re.compile(rf"({_NUMBER}(?:\s*[-+*/×x÷]\s*{_NUMBER})+)\s*=\s*(?=({_NUMBER})(?![\d.,]*\d))")
_TERM = re.compile(rf"\s*([-+*/×x÷])\s*({_NUMBER})")
_OPERATORS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _evaluate(expression: str) -> float | None:
    """An expression of numbers and + - * / (× x ÷ too), * and / before + and -; None on a
    division by zero."""
    expression = expression.replace("×", "*").replace("x", "*").replace("÷", "/")
    first = re.match(_NUMBER, expression)
    terms, signs, value = [], ["+"], _number(first.group())
    for op, number in _TERM.findall(expression, first.end()):
        if op in "*/":
            if op == "/" and _number(number) == 0:
                return None
            value = _OPERATORS[op](value, _number(number))
        else:
            terms.append(value)
            signs.append(op)
            value = _number(number)
    terms.append(value)
    return sum(t if sign == "+" else -t for t, sign in zip(terms, signs, strict=True))


# arithmetic written in words, as small models often write it: "4 times 4 is 16"
_IN_WORDS = [
    (re.compile(r"\b(?:multiplied by|times)\b", re.IGNORECASE), "*"),
    (re.compile(r"\bdivided by\b", re.IGNORECASE), "/"),
    (re.compile(r"\bplus\b", re.IGNORECASE), "+"),
    (re.compile(r"\bminus\b", re.IGNORECASE), "-"),
    (re.compile(r"\b(?:is equal to|equals|is|makes|gives)\b", re.IGNORECASE), "="),
]


def equations(step: str) -> list[tuple[float, bool]]:
    """Each equation a step writes ("12 + 5 = 17", or in words, "12 plus 5 is 17"): the number
    it arrives at, and whether it holds. Words count only between numbers: "grows to 4 times its
    size" and "the answer is 11" write no equation."""
    for words, symbol in _IN_WORDS:
        step = words.sub(symbol, step)
    found = []
    for expression, result in _EQUATION.findall(step):
        value = _evaluate(expression)
        found.append((_number(result), value is not None and math.isclose(value, _number(result), abs_tol=1e-6)))
    return found


def reasoning_counts(question: Question, text: str) -> dict[str, int]:
    """A solution's steps held against a generated problem's worked steps (MME-CoT's quality
    counts, with arithmetic as the judge): its steps; those with an equation (`checked`) and those
    whose every equation holds (`right`); those arriving at one of the reference's values
    (`relevant`); the reference's steps (`key`) and those whose value an equation that holds
    arrives at (`stated`)."""
    if question.worked is None:
        raise ValueError(f"question {question.question_id} has no worked steps to hold a solution against")
    steps = [equations(step) for step in split_steps(text)]
    values = {op.after for op in question.worked}
    arrived = {result for found in steps for result, holds in found if holds}
    return {
        "steps": len(steps),
        "checked": sum(1 for found in steps if found),
        "right": sum(1 for found in steps if found and all(holds for _, holds in found)),
        "relevant": sum(1 for found in steps if any(result in values for result, _ in found)),
        "key": len(question.worked),
        "stated": sum(1 for op in question.worked if op.after in arrived),
    }
