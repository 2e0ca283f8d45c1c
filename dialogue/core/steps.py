"""Solutions as numbered steps: how a solution's text divides into steps, and, for generated
arithmetic problems, which steps are true.

A step starts at a line "Step N: ..." (or "Step N.", or a numbered line "N. ..."). Words before the first step belong to
it, and the answer line after the last step belongs to the last, so the steps joined with
newlines give the text back. A reply with no numbered step is one step.
"""

from __future__ import annotations

import math
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
