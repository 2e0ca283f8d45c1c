"""Reading answers out of turns, and deciding whether they are correct.

One reader per answer kind: a multiple-choice letter (`read_choice`), a number (`read_number`),
or a short answer matched against normalised aliases. The LLM extractor asks a model to restate
the final answer in a fixed format (or "agree" / "disagree" / "none") and reads that reply with
the plain reader of the same kind, one batch per level. The readers put precision first: a reply
that contradicts itself, or only repeats the answer-format instruction, gives no answer (see
docs/design.md, section 5, and benchmarks/judge_accuracy.py for how often they are right).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from agents.requests import Backend, ChatRequest, Sampling
from dialogue.core.questions import LETTERS, Question, normalize, show_question

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
# "Answer: X", "The answer is X", "the correct answer to the question ... is X", "answer, which is X"
_ANSWER_STATEMENT = re.compile(
    r"(?i:\b(?:final\s+|correct\s+)?answer\b)(?:\s*[:=]|[^\n\d=]{0,80}?\b(?i:is|was|would be|will be|should be)\b)"
    r"[ \t]*[:=\-]?[ \t]*(.*)"
)
_AGREE_ONLY = re.compile(
    r"\b(?:i|we)\s+(?:now\s+|fully\s+|completely\s+|totally\s+|do\s+)?agree\b(?!\s+to disagree)",
    re.IGNORECASE,
)
# A capital letter standing for a choice: followed by punctuation or the end, never by a word
# ("A circle", "I think" are words). Fillers such as "indeed" may stand before it.
_LETTER = re.compile(
    r"""^[\s\(\[\*'"“‘]*(?:(?:indeed|option|choice|letter)\s+[\(\[\*'"“‘]*)?([A-Z])"""
    r"""(?![A-Za-z0-9])(?!\s+[a-z])([\)\]\*'"”’\.:,]*)\s*(.*)""",
    re.S,
)
# "X) text" anywhere, "X: text" or "X. text" at the start of a line, or a letter alone on a line
_SHAPED = re.compile(
    r"(?:(?<![A-Za-z0-9])([A-Z])\)|(?m:^)[ \t\*]*\(?([A-Z])[:.\)](?!\w)|(?m:^[ \t\*]*([A-Z])[ \t\*]*$))"
    r"[ \t]*((?:(?!(?<![A-Za-z0-9])[A-Z]\))[^\n])*)"
)  # its text ends where the next "X)" begins
# where a working states a result: "= 62", "has 62", "is 62", "now 62", "left with 62"
_RESULT = re.compile(
    r"(?:=|\b(?:has|have|had|is|are|was|equals?|makes?|gets?|totals?|with|now)\b)\s*"
    r"(?:about\s+|only\s+)?(-?\d[\d,]*(?:\.\d+)?)"
)
_DISOWNED = re.compile(r"(?i)not\s+(?!(?:quite\s+|entirely\s+)?(?:correct|incorrect|right|wrong|true|false)\b)")
_ABOUT_OTHERS = re.compile(r"(?i)\b(?:your|their|his|her|participant's|other's)\s+answer\b")
_OPERATOR = re.compile(r"(?i)\s*(?:[-+*/x×=]|more\b|less\b|plus\b|minus\b|times\b|divided\b|multiplied\b)")
_CONCLUDES = re.compile(r"(?i)=|\b(?:so|now|total|left|finally|therefore|thus)\b")
# "60, which is the answer": a statement that names its answer before the word
_ANSWER_BEFORE = re.compile(
    r"(?i)([^\n.!?:]{1,60}?)\s*(?:,\s*which)?\s+(?:is|was)\s+the\s+(?:correct\s+|right\s+|final\s+)?answer\b"
)
_SENTENCE_END = re.compile(r"(?<!\b[A-Z])[.!?](?=\s)|\n")  # not after an initial, as in "H. G. Wells"
# "Mercury, C." : a line that ends in a letter after the text
_TEXT_THEN_LETTER = re.compile(r"(?m)^[ \t\*]*([^\n]*?\w[^\n]*?)\s*[,:\-]\s*\(?([A-Z])\)?[.!]?[ \t\*]*$")


def _answer_segment(text: str) -> str | None:
    """What follows the last "answer is" / "Answer:" on its line, if the text states one."""
    matches = list(_ANSWER_STATEMENT.finditer(text))
    return matches[-1].group(1).strip() if matches else None


def _contains(haystack: str, needle: str) -> bool:
    return bool(needle) and re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", haystack) is not None


def strip_echoes(text: str, templates: list[str]) -> str:
    """The text without the places where it repeats an answer-format instruction it was given
    ("Finish with a final line of the form 'Answer: X'"): an echoed template is no answer."""
    for template in templates:
        for pattern in _echo_patterns(template):
            text = pattern.sub(" ", text)
    return text


@lru_cache(maxsize=64)
def _echo_patterns(template: str) -> tuple[re.Pattern, ...]:
    """The template's words before its quoted example (their last four, any spacing and case),
    then an example in quotes of at most 40 characters, then its remaining words if they follow."""
    quoted = re.search(r"""['"“‘]""", template)
    lead = template[: quoted.start()] if quoted else template
    words = re.findall(r"\w+", lead)[-4:]
    if len(words) < 3:
        return ()
    rest = re.findall(r"\w+", template[quoted.end() :].split("'", 1)[-1]) if quoted else []
    head = r"\W+".join(map(re.escape, words))
    tail = r"(?:\W+" + r"\W+".join(map(re.escape, rest)) + r")?" if rest else ""
    example = r"""\s*(?:['"“‘][^'"”’\n]{0,40}['"”’])?"""
    patterns = [re.compile(rf"(?i)\b{head}\b{example}{tail}[.,]?")]
    # its example on its own ("Answer: N"): a placeholder, not an answer
    shown = re.match(r"""['"“‘]([^'"”’]{6,40})['"”’]""", template[quoted.start() :]) if quoted else None
    if shown:
        patterns.append(re.compile(rf"(?<!\w){re.escape(shown.group(1))}(?!\w)"))
    return tuple(patterns)


@dataclass(frozen=True)
class ChoiceReading:
    """What a reply says about the choices: the letter it gives, or None and why not."""

    letter: str | None
    problem: dict | None = None  # {"judge": "conflict", "letter": L, "text": C} or {"judge": ..., ...}


def read_choice(text: str, choices: list[str], echoes: list[str] = (), cut_off: bool = False) -> ChoiceReading:
    """The choice a reply gives as its answer.

    Every place where the reply gives a choice counts: a letter in an answer statement
    ("Answer: B", "the answer is (B)"), in a choice-shaped line ("B) Mercury", "B: Mercury", a
    letter alone on a line, "Mercury, B."), or in brackets ("(B)"); and a choice's text where an
    answer stands: in an answer statement, before "is the answer", or at the edge of the first or
    the last sentence ("The closest planet is Mercury."). The reply gives no answer when those
    places disagree (it names two choices, or lists them), when a letter and the text beside it
    are different choices (a conflict), when it answers with a letter that is no choice, when it
    answers with letters of which none can be read ("A) Rome" where Rome is no choice), or when
    it says the answer is not something ("the answer is not a single option").
    Whatever repeats the answer-format instruction it was given (`echoes`) is left out first. A
    reply cut off by the length limit (`cut_off`) is read by what it stated, not by its sentences."""
    found = _Choices(choices)
    text = strip_echoes(text, list(echoes))
    by_letter: list[str] = []  # the letters it gives
    by_text: list[str] = []  # the choices whose text it gives as an answer
    shown: set[str] = set()  # every letter a choice-shaped line shows, read or not
    answered_with_letters = False
    for letter, after, kind in _letter_places(text, found.letters):
        answered_with_letters = True
        if kind == "shaped":
            shown.add(letter)
        reading = _mention(
            letter,
            found.starting(after),
            bool(after.strip()) and after.strip() != letter,
            found.letters,
            reasons=kind == "statement",
        )
        if reading is not None and reading.problem is not None:
            return reading
        if reading is not None:
            by_letter.append(reading.letter)
    for match in _ANSWER_STATEMENT.finditer(text):
        if not _LETTER.match(match.group(1)):
            by_text += found.one_named_in(match.group(1))
    for match in _ANSWER_BEFORE.finditer(text):
        by_text += found.one_named_in(match.group(1))
    sentences = [] if cut_off else [s for s in _SENTENCE_END.split(text) if s.strip()]
    for sentence in dict.fromkeys(sentences[:1] + sentences[-1:]):
        by_text += found.stated_in(sentence)
    given = list(dict.fromkeys(by_letter + by_text))
    if len(given) > 1 or len(shown) > 1:
        return ChoiceReading(None, {"judge": "several", "letters": sorted(set(given) | shown)})
    if (answered_with_letters and not by_letter) or _disowns(_own_statements(text)):
        return ChoiceReading(None)
    return ChoiceReading(given[0] if given else None)


class _Choices:
    """The choices of a question, compared as normalised text."""

    def __init__(self, choices: list[str]):
        self.letters = LETTERS[: len(choices)]
        self.texts = [normalize(c) for c in choices]

    def starting(self, fragment: str) -> str | None:
        """The choice whose text the fragment is or begins with (the longest, where one
        choice's text begins another's: "Vitamin A" and "Vitamin A1")."""
        norm = normalize(fragment)
        hits = [
            (len(c), self.letters[i]) for i, c in enumerate(self.texts) if c and (norm == c or norm.startswith(c + " "))
        ]
        best = [letter for size, letter in hits if size == max(hits)[0]] if hits else []
        return best[0] if len(best) == 1 else None

    def one_named_in(self, fragment: str) -> list[str]:
        """The one choice whose text the fragment contains, if exactly one."""
        norm = normalize(fragment)
        hits = [self.letters[i] for i, c in enumerate(self.texts) if _contains(norm, c)]
        return hits if len(hits) == 1 else []

    def stated_in(self, sentence: str) -> list[str]:
        """The choice a sentence is about: it names one choice only, and is its text, or begins
        or ends with it ("The capital of Japan is Tokyo."); a choice named in passing is not."""
        norm = normalize(sentence)
        named = self.one_named_in(sentence)
        c = self.texts[self.letters.index(named[0])] if named else ""
        return named if c and (norm == c or norm.startswith(c + " ") or norm.endswith(" " + c)) else []


def _letter_places(text: str, letters: str):
    """(letter, the text after it, kind) for every place the reply gives a letter."""
    for match in _ANSWER_STATEMENT.finditer(text):
        letter = _LETTER.match(match.group(1))
        if letter:
            # "Answer: C) Carbon" puts a choice's text after the letter; "Answer: C, since ..." reasons
            shaped = any(mark in letter.group(2) for mark in ")]:")
            yield letter.group(1), letter.group(3), "shaped statement" if shaped else "statement"
    for match in _SHAPED.finditer(text):
        yield match.group(1) or match.group(2) or match.group(3), match.group(4), "shaped"
    for match in _TEXT_THEN_LETTER.finditer(text):
        yield match.group(2), match.group(1), "trailing"
    for letter in re.findall(rf"\(([{letters}])\)", text):
        yield letter, "", "bracket"


def _mention(letter: str, text_choice: str | None, has_text: bool, letters: str, reasons: bool) -> ChoiceReading | None:
    """One place giving a letter, with the choice its text is (if any). None: it gives no choice,
    a letter followed by words that are not that choice ("A) F.I.L.E."), unless those words may
    be reasons (after "Answer: A." or "Answer: A,")."""
    if letter not in letters:
        if text_choice is not None:
            return ChoiceReading(None, {"judge": "conflict", "letter": letter, "text": text_choice})
        # "Answer: E" with four choices; a stray capital on a line of prose is not one
        return ChoiceReading(None, {"judge": "not a choice", "letter": letter}) if reasons or not has_text else None
    if text_choice is not None and text_choice != letter:
        return ChoiceReading(None, {"judge": "conflict", "letter": letter, "text": text_choice})
    if has_text and text_choice is None and not reasons:
        return None
    return ChoiceReading(letter)


def _own_statements(text: str) -> list[str]:
    """What follows each of the reply's own answer statements (not those about the other
    participant's answer), empty ones left out."""
    found = []
    for match in _ANSWER_STATEMENT.finditer(text):
        rest = match.group(1).strip()
        if rest and not _ABOUT_OTHERS.search(text[max(0, match.start() - 30) : match.start() + 8]):
            found.append(rest)
    return found


def _disowns(statements: list[str]) -> bool:
    """ "The answer is not possible", "... is not a single option": it says there is none ("this
    answer is not correct" judges an answer instead)."""
    return any(_DISOWNED.match(rest) for rest in statements)


def read_number(text: str, echoes: list[str] = (), cut_off: bool = False) -> str | None:
    """The number a reply gives as its answer.

    Its answer statements come first ("Answer: 12", "the answer is 12, since ..."): those that
    give a number must agree, and a number that is part of an expression ("10 more than 20") is
    no answer. A statement that the answer is not something ("the answer is not possible")
    leaves the reply without one, and so does one with no number ("the answer is no") where no
    statement gives a number; a statement about the other participant's answer says nothing of
    its own. Where it states no answer, the result its working concludes on counts: a number
    alone, or the last result of its last sentence with numbers when that sentence concludes
    ("so he has 58 + 4 = 62", "she now has 11 left"); not when the reply was cut off by the
    length limit (`cut_off`): an unfinished working has no result."""
    text = strip_echoes(text, list(echoes))
    statements = _own_statements(text)
    if _disowns(statements):
        return None
    stated, unanswered = [], False
    for rest in statements:
        sentence = re.split(r"[.!?](?=\s)", rest)[0]  # the statement's own sentence
        number = _NUMBER.search(sentence)
        if number is not None and _OPERATOR.match(sentence[number.end() :]):  # "10 more than 20", "3 + 4 = 7"
            results = re.findall(rf"=\s*({_NUMBER.pattern})", sentence)
            number = _NUMBER.search(results[-1]) if results else None
        if number is None:
            unanswered = True  # "the answer is no", "the answer is correct"
        else:
            stated.append(canonical_number(number.group()))
    if stated:
        return stated[0] if len(set(stated)) == 1 else None
    if unanswered or cut_off:
        return None
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if _NUMBER.search(s)]
    if not sentences or text.rstrip().endswith("?"):  # a reply that ends on a question has not concluded
        return None
    last = sentences[-1].rstrip(".")
    if _NUMBER.fullmatch(last):
        return canonical_number(last)
    # the last result that is not the start of an expression: "= 534, which is 4 times the size" is 534
    results = [m.group(1) for m in _RESULT.finditer(last) if not _OPERATOR.match(last[m.end() :])]
    return canonical_number(results[-1]) if results and _CONCLUDES.search(last) else None


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
    problem: dict | None = None  # why a reply that names choices gets no answer (kept on the turn)


class Judge:
    """Extracts answers with one method, chosen by the dataset config, and marks correctness.

    `echoes`: the answer-format instructions the agents were given; a reply that repeats one is
    not read as answering with its example. `on_conflict`: what a reply whose letter and choice
    text disagree gets: no answer (`none`), the letter's, or the text's; the conflict is recorded
    on the turn either way."""

    def __init__(
        self,
        kind: str,
        base_kind: str | None = None,
        backend: Backend | None = None,
        prompt: str | None = None,
        max_tokens: int = 24,
        echoes: list[str] = (),
        on_conflict: str = "none",
    ):
        if kind == "llm" and (backend is None or prompt is None or base_kind is None):
            raise ValueError("the llm judge needs a backend, a prompt and the kind it reads")
        self.kind = kind
        self.base_kind = base_kind if kind == "llm" else kind
        self.backend = backend
        self.prompt = prompt
        self.max_tokens = max_tokens
        self.echoes = list(echoes)
        self.on_conflict = on_conflict

    def read(self, text: str, question: Question, cut_off: bool = False) -> Reading:
        """`cut_off`: the reply stopped at the length limit; only what it stated counts."""
        if self.base_kind == "choice":
            found = read_choice(text, question.choices or [], self.echoes, cut_off)
            answer = found.letter
            problem = found.problem
            if problem and problem["judge"] == "conflict" and self.on_conflict != "none":
                chosen = problem[self.on_conflict]
                answer = chosen if chosen in LETTERS[: len(question.choices or [])] else None
        else:
            answer = (
                read_number(text, self.echoes, cut_off)
                if self.base_kind == "number"
                else extract_alias(strip_echoes(text, self.echoes), question)
            )
            problem = None
        return Reading(answer, answer is None and problem is None and says_only_agree(text), problem)

    def read_batch(self, items: list[tuple[str, Question, bool]]) -> list[Reading]:
        """(text, question, cut off) -> readings; the llm judge asks its model in one batch."""
        if self.kind != "llm":
            return [self.read(*item) for item in items]
        requests = [
            ChatRequest(
                messages=(("user", self.prompt.format(question=show_question(q), reply=text)),),
                sampling=Sampling(temperature=0.0, top_p=1.0, max_tokens=self.max_tokens),
                seed=0,
            )
            for text, q, _ in items
        ]
        readings = []
        for (_, q, _), done in zip(items, self.backend.generate(requests), strict=True):
            verdict = done.text.strip().lower().strip(".")
            if verdict.startswith("agree"):
                readings.append(Reading(None, True))
            elif verdict.startswith(("disagree", "none")):
                readings.append(Reading(None, False))
            else:
                readings.append(self.read(done.text, q))
        return readings

    def is_correct(self, answer: str | None, question: Question) -> bool | None:
        if answer is None:
            return None
        if self.base_kind == "number":
            try:
                return abs(float(answer) - float(question.gold.replace(",", ""))) < 1e-6
            except ValueError:
                return False
        return answer == question.gold
