"""Reading answers out of turns, and deciding whether they are correct.

Extractors are plain functions, one per answer kind: a multiple-choice letter, a number, or a
short answer matched against normalised aliases. The LLM extractor asks a model to restate the
final answer in a fixed format (or "agree" / "disagree" / "none") and reads that reply with the
plain extractor of the same kind, one batch per level.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from agents.requests import Backend, ChatRequest, Sampling
from dialogue.questions import LETTERS, Question, show_question

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_ANSWER_STATEMENT = re.compile(
    r"(?i:\b(?:final\s+)?answer\b)(?:\s*(?i:is|would be|will be|should be))?\s*[:=\-]?\s*(.*)"
)
_AGREE_ONLY = re.compile(
    r"\b(?:i|we)\s+(?:now\s+|fully\s+|completely\s+|totally\s+|do\s+)?agree\b(?!\s+to disagree)",
    re.IGNORECASE,
)
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def normalize(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces: how aliases are compared."""
    text = text.lower().translate(str.maketrans(string.punctuation, " " * len(string.punctuation)))
    return " ".join(_ARTICLES.sub(" ", text).split())


def _answer_segment(text: str) -> str | None:
    """What follows the last "answer is" / "Answer:" on its line, if the text states one."""
    matches = list(_ANSWER_STATEMENT.finditer(text))
    return matches[-1].group(1).strip() if matches else None


def _contains(haystack: str, needle: str) -> bool:
    return bool(needle) and re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", haystack) is not None


def extract_choice(text: str, choices: list[str]) -> str | None:
    letters = LETTERS[: len(choices)]
    letter = rf"[{letters}]"

    def by_text(segment: str) -> str | None:
        norm = normalize(segment)
        hits = {letters[i] for i, c in enumerate(choices) if _contains(norm, normalize(c))}
        return hits.pop() if len(hits) == 1 else None

    segment = _answer_segment(text)
    if segment is not None:
        m = re.match(rf"[\(\[\*\s]*({letter})(?![A-Za-z0-9])", segment)
        if m:
            return m.group(1)
        found = by_text(segment)
        if found:
            return found
    for pattern in (rf"\(({letter})\)", rf"(?m)^\s*\**({letter})(?:[\).:]|\**\s*$)"):
        hits = set(re.findall(pattern, text))
        if len(hits) == 1:
            return hits.pop()
    return by_text(text)


def extract_number(text: str) -> str | None:
    segment = _answer_segment(text)
    numbers = _NUMBER.findall(segment) if segment else []
    if not numbers:
        numbers = _NUMBER.findall(text)
    return canonical_number(numbers[-1] if segment is None else numbers[0]) if numbers else None


def canonical_number(token: str) -> str:
    value = float(token.replace(",", ""))
    return str(int(value)) if value.is_integer() else repr(value)


def extract_alias(text: str, question: Question) -> str | None:
    segment = _answer_segment(text)
    norm = normalize(segment if segment is not None else text)
    if any(_contains(norm, normalize(a)) for a in [question.gold, *question.aliases]):
        return question.gold
    if segment is not None and norm:
        return norm  # an answer of its own that matches no alias
    return None


def says_only_agree(text: str) -> bool:
    return _AGREE_ONLY.search(text) is not None


@dataclass
class Reading:
    answer: str | None
    only_agrees: bool  # the turn says it agrees and states no answer of its own


class Judge:
    """Extracts answers with one method, chosen by the dataset config, and marks correctness."""

    def __init__(self, kind: str, base_kind: str | None = None, backend: Backend | None = None,
                 prompt: str | None = None, max_tokens: int = 24):
        if kind == "llm" and (backend is None or prompt is None or base_kind is None):
            raise ValueError("the llm judge needs a backend, a prompt and the kind it reads")
        self.kind = kind
        self.base_kind = base_kind if kind == "llm" else kind
        self.backend = backend
        self.prompt = prompt
        self.max_tokens = max_tokens

    def read(self, text: str, question: Question) -> Reading:
        answer = self._extract(text, question)
        return Reading(answer, answer is None and says_only_agree(text))

    def read_batch(self, items: list[tuple[str, Question]]) -> list[Reading]:
        if self.kind != "llm":
            return [self.read(text, q) for text, q in items]
        requests = [
            ChatRequest(
                messages=(("user", self.prompt.format(question=show_question(q), reply=text)),),
                sampling=Sampling(temperature=0.0, top_p=1.0, max_tokens=self.max_tokens),
                seed=0,
            )
            for text, q in items
        ]
        readings = []
        for (text, q), done in zip(items, self.backend.generate(requests)):
            verdict = done.text.strip().lower().strip(".")
            if verdict.startswith("agree"):
                readings.append(Reading(None, True))
            elif verdict.startswith(("disagree", "none")):
                readings.append(Reading(None, False))
            else:
                readings.append(Reading(self._extract(done.text, q), False))
        return readings

    def _extract(self, text: str, question: Question) -> str | None:
        if self.base_kind == "choice":
            return extract_choice(text, question.choices or [])
        if self.base_kind == "number":
            return extract_number(text)
        return extract_alias(text, question)

    def is_correct(self, answer: str | None, question: Question) -> bool | None:
        if answer is None:
            return None
        if self.base_kind == "number":
            try:
                return abs(float(answer) - float(question.gold.replace(",", ""))) < 1e-6
            except ValueError:
                return False
        return answer == question.gold

