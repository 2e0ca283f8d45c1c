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
from dataclasses import dataclass, replace
from functools import lru_cache

from agents.requests import Backend, ChatRequest, Sampling
from dialogue.core.questions import LETTERS, Question, normalize, show_question

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
# "Answer: X", "The answer is X", "the correct answer to the question ... is X", "answer, which is X"
_STATES = r"(?i:\b(?:(?:final\s+|correct\s+)?answer|(?:correct|right|best)\s+(?:option|choice))\b)"
# what follows runs to the end of the line or to the next statement on it ("not A; the answer is C")
_ANSWER_STATEMENT = re.compile(
    _STATES + r"(?:\s*[:=]|[^\n\d=]{0,80}?\b(?i:is|was|would be|will be|should be)\b)"
    r"[ \t]*[:=\-]?[ \t]*((?:(?!" + _STATES + r").)*)"
)
_AGREE_ONLY = re.compile(
    r"\b(?:i|we)\s+(?:now\s+|fully\s+|completely\s+|totally\s+|do\s+)?agree\b(?!\s+to disagree)",
    re.IGNORECASE,
)
# what keeps an "I agree" from taking the other's answer: a reservation, or a verdict against it
# ("I agree that your answer is wrong", "I agree with part of that, but ...")
_RESERVATION = re.compile(
    r"(?i)\b(?:but|however|although|though|yet|except|partly|partially|part of|some of|to some extent|"
    r"disagree|wrong|incorrect|not correct|not right|mistaken?|doubt|not sure|unsure)\b"
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
# a letter after it stands for a choice when punctuation, the end, or a reason follows
_LETTER_THEN_REASON = r"""(?=[\s\)\]\*'"”’]*(?:[.,:;!]|$|\s(?:because|since|as|for|based|which|with)\b))"""
# "I pick B", "I'll go with option (B)", "my choice is B": a choice made in the first person
_CHOSEN = re.compile(
    r"(?i:\bI(?:'ll|'d|\s+will|\s+would|'m\s+going\s+to|\s+am\s+going\s+to)?\s+"
    r"(?:pick|choose|select|go\s+with|go\s+for|stick\s+with|stay\s+with|opt\s+for)"
    r"|\bmy\s+(?:choice|pick|selection)\s+(?:is|would\s+be|will\s+be|remains|stays))\s+"
    r"(?i:(?:option|choice|letter|answer)\s+)?[\(\[\*'\"“‘]*([A-Z])(?![A-Za-z0-9])" + _LETTER_THEN_REASON,
    re.M,
)
# "option B is correct", "choice (C) is the right one", "B is the correct answer"
_CALLED_RIGHT = re.compile(
    r"(?:(?i:\b(?:option|choice|letter)\s+)|(?<![A-Za-z0-9'’]))[\(\[\*'\"“‘]*([A-Z])[\)\]\*'\"”’]*,?\s+"
    r"(?i:is|would be|seems to be)\s+(?i:the\s+)?(?i:correct|right|best|true)(?i:\s+(?:answer|one|choice|option))?\b"
)
# "is the answer of the D", "the answer for (B)": a letter named as the answer after the word
_ANSWER_OF = re.compile(
    r"(?i:\banswer\s+(?:of|for)\s+(?:the\s+)?(?:letter\s+|option\s+|choice\s+)?)[\(\[]?([A-Z])[\)\]]?(?![A-Za-z0-9])"
)
# a speaker's name before a reply in a debate of agents A, B, C ("C: D) 1939", "A: Answer: B"): a
# name followed by a choice mark or an answer statement is no choice
_SPEAKER_NAME = re.compile(r"(?m)^([ \t\*]*)[A-Z]:[ \t]+(?=[A-Z][\)\]:]|\([A-Z]\)|(?i:answer|the\s+answer)\b)")
# where a working states a result: "= 62", "has 62", "is 62", "now 62", "left with 62"
_RESULT = re.compile(
    r"(?:=|\b(?:has|have|had|is|are|was|equals?|makes?|gets?|totals?|with|now)\b)\s*"
    r"(?:about\s+|only\s+)?(-?\d[\d,]*(?:\.\d+)?)"
)
# "the answer is not possible / not a single option / not among the choices / not known": there is none
_DISOWNED = re.compile(
    r"(?i)not\s+(?:(?:a\s+)?possible|a\s+single|one\s+of|any\s+of|among|listed|given|provided|available|in\s+the|"
    r"clear|known|certain|sure|determin|there|enough|defined|found|here|part\s+of|"
    r"(?:an?\s+|the\s+)?(?:answer|solution|valid|real|number|option|choice)\b)"
)
# "... not 'C' but 'A'", "not 12, but rather 15": what it names instead
_BUT_INSTEAD = re.compile(
    r"(?i:\bbut\s+(?:rather\s+|instead\s+)?(?:option\s+|choice\s+)?)[\(\[\*'\"“‘]*([A-Z](?![A-Za-z0-9])|-?\d[\d,]*(?:\.\d+)?)"
)
# "I made a mistake", "I was wrong": said after its answer, it takes the answer back
_RETRACTED = re.compile(
    r"(?i)\bI\s+(?:have\s+)?made\s+(?:an?\s+)?(?:incorrect\s+|wrong\s+)?(?:mistake|error|assumption)|"
    r"\bI\s+was\s+wrong\b|\bmy\s+(?:mistake|bad)\b|\b(?:this|that|it)\s+is\s+not\s+(?:a|the|my)\s+final\s+answer\b|"
    r"\bI\s+(?:take|took)\s+(?:it|that)\s+back\b"
)
# "the answer is not B": B is ruled out, and the statement gives nothing
_RULED_OUT = re.compile(
    r"^[Nn]ot\s+(?:(?i:option|choice|letter)\s+)?[\(\[\*'\"“‘]*([A-Z](?![A-Za-z0-9])|-?\d[\d,]*(?:\.\d+)?)"
)
_FILLER = frozenset(  # words that say nothing about which choice is meant
    "a an the of in on at to and or is are was it its by for with from that this as be".split()  # noqa: SIM905
)
_ABOUT_OTHERS = re.compile(r"(?i)\b(?:your|their|his|her|participant's|other's)\s+answer\b|\b[A-Z][a-z]+'s\s+answer\b")
# an answer in unknowns ("10*N", "22 N", "2*N + 10"), which gives no number
_SYMBOLIC = re.compile(
    r"\d\s*\*?\s*[A-WYZ]\b|\b[A-WYZ]\s*[*×/+]\s*\d|\b[A-WYZ]\s+(?:times|plus|minus)\b|\b(?:times|plus)\s+[A-WYZ]\b"
)
# it calls its own answer wrong ("this answer is not correct" may judge the other's)
_SELF_DOUBT = re.compile(
    r"(?i)\bmy\s+(?:own\s+)?answer\s+(?:is|was)\s+(?:\w+\s+)?(?:incorrect|wrong|not\s+(?:correct|right))"
)
# "not 2" anywhere in a working: 2 is ruled out ("it is not 12, it is 15")
_NOT_NUMBER = re.compile(r"\bnot\s+(-?\d[\d,]*(?:\.\d+)?)\b(?!\s*(?:more|less|times|[-+*/x×]))")
# about the other participant: "you found 104, which is the correct answer"
_OTHERS_DOING = re.compile(r"(?i)\b(?:you|your|they|their|the other)\b")
_OPERATOR = re.compile(r"(?i)\s*(?:[-+*/x×=]|more\b|less\b|plus\b|minus\b|times\b|divided\b|multiplied\b)")
_DENIES = re.compile(r"(?i)\b(?:not|no|cannot|can't|impossible)\b")
# "43, which is not the answer": that number is ruled out
_NOT_THE_ANSWER = re.compile(
    r"(-?\d[\d,]*(?:\.\d+)?)\s*,?\s*(?:which\s+)?(?i:is|was)\s+not\s+the\s+(?i:correct\s+|right\s+|final\s+)?answer"
)
# "the answer of 4"; not "Finish with the answer of 57", an echo of the answer-format instruction
_NUMBER_ANSWER_OF = re.compile(
    r"(?i)\b(?<!finish with the )(?<!finish with an )answer\s+(?:of|for)\s+(-?\d[\d,]*(?:\.\d+)?)(?![\d*])"
)
_NOT_THE_ANSWER_AFTER = re.compile(r"(?i)\b(?:is|was)\s+(?:no\s+longer|not)\s+the\s+(?:correct\s+|right\s+)?answer\b")
_CONCLUDES = re.compile(r"(?i)=|\b(?:so|now|in\s+total|total\s+(?:is|of)|left|finally|therefore|thus)\b")
# "60, which is the answer": a statement that names its answer before the word
_ANSWER_BEFORE = re.compile(
    r"(?i)([^\n.!?:]{1,60}?)\s*(?:,\s*which)?\s+(?:is|was)\s+the\s+(?:correct\s+|right\s+|final\s+)?answer\b"
)
# what every match of _ANSWER_BEFORE contains
_IS_THE_ANSWER = re.compile(r"(?i)\s(?:is|was)\s+the\s+(?:correct\s+|right\s+|final\s+)?answer\b")
_SENTENCE_END = re.compile(r"(?<!\b[A-Z])[.!?](?=\s)|\n")  # not after an initial, as in "H. G. Wells"
# "Mercury, C." : a line that ends in a letter after the text
# (its text runs to the first word character greedily: "[^\n]*?\w[^\n]*?" matches the same lines but
# tries every place for that character, hundreds of microseconds on a long line that does not match)
_TEXT_THEN_LETTER = re.compile(r"(?m)^[ \t\*]*([^\w\n]*\w[^\n]*?)\s*[,:\-]\s*\(?([A-Z])\)?[.!]?[ \t\*]*$")


@lru_cache(maxsize=16)
def _statements(text: str) -> tuple[re.Match, ...]:
    """Every answer statement of a reply: each reader looks at them several times."""
    return tuple(_ANSWER_STATEMENT.finditer(text))


def _answers_before(text: str) -> list[re.Match]:
    """Every "60, which is the answer"; searched for its fixed part first, since the whole
    pattern tries 60 lengths at every character."""
    return list(_ANSWER_BEFORE.finditer(text)) if _IS_THE_ANSWER.search(text) else []


def _answer_segment(text: str) -> str | None:
    """What follows the last "answer is" / "Answer:" on its line, if the text states one."""
    matches = _statements(text)
    return matches[-1].group(1).strip() if matches else None


def _contains(haystack: str, needle: str) -> bool:
    """The needle is in the haystack as whole words (a plain substring test first: most are not)."""
    return bool(needle) and needle in haystack and _whole_words(needle).search(haystack) is not None


@lru_cache(maxsize=4096)
def _whole_words(needle: str) -> re.Pattern:
    return re.compile(rf"(?<!\w){re.escape(needle)}(?!\w)")


def strip_echoes(text: str, templates: list[str]) -> str:
    """The text without the places where it repeats an answer-format instruction it was given
    ("Finish with a final line of the form 'Answer: X'"): an echoed template is no answer."""
    lowered = text.lower() if text.isascii() else None  # (?i) matches more than str.lower() outside ASCII
    for template in templates:
        for pattern, needle in _echo_patterns(template):
            # a pattern runs only where the word it starts with is in the text: most replies echo nothing
            if lowered is not None and needle not in lowered:
                continue
            stripped = pattern.sub(" ", text)
            if stripped != text:
                text = stripped
                lowered = text.lower() if text.isascii() else None
    return text


@lru_cache(maxsize=64)
def _echo_patterns(template: str) -> tuple[tuple[re.Pattern, str], ...]:
    """The template's words before its quoted example (their last four, any spacing and case),
    then an example in quotes of at most 40 characters, then its remaining words if they follow.
    Each pattern comes with a lower-case piece of text that every match contains."""
    quoted = re.search(r"""['"“‘]""", template)
    lead = template[: quoted.start()] if quoted else template
    words = re.findall(r"\w+", lead)[-4:]
    if len(words) < 3:
        return ()
    rest = re.findall(r"\w+", template[quoted.end() :].split("'", 1)[-1]) if quoted else []
    head = r"\W+".join(map(re.escape, words))
    tail = r"(?:\W+" + r"\W+".join(map(re.escape, rest)) + r")?" if rest else ""
    example = r"""\s*(?:['"“‘][^'"”’\n]{0,40}['"”’])?"""
    # the words, then an unquoted example on the same line ("... of the form: Answer: 100"): the
    # rest of that line is the echo; otherwise the quoted example and the remaining words
    first = words[0].lower()
    patterns = [
        (re.compile(rf"(?i)\b{head}\b[ \t]*[:\-]?(?!\s*['\"“‘][^'\"”’\n]{{0,40}}['\"”’])[^\n]*"), first),
        (re.compile(rf"(?i)\b{head}\b{example}{tail}[.,]?"), first),
    ]
    # its example on its own ("Answer: N"): a placeholder, not an answer
    shown = re.match(r"""['"“‘]([^'"”’]{6,40})['"”’]""", template[quoted.start() :]) if quoted else None
    if shown:
        patterns.append((_whole_words(shown.group(1)), shown.group(1).lower()))
    return tuple(patterns)


@dataclass(frozen=True)
class ChoiceReading:
    """What a reply says about the choices: the letter it gives, or None and why not."""

    letter: str | None
    problem: dict | None = None  # {"judge": "conflict", "letter": L, "text": C} or {"judge": ..., ...}


def read_choice(text: str, choices: list[str], echoes: list[str] = (), cut_off: bool = False) -> ChoiceReading:
    """The choice a reply gives as its answer.

    Every place where the reply gives a choice counts: a letter in an answer statement
    ("Answer: B", "the answer is (B)", "the correct option is B"), in a choice made in the first
    person ("I pick B", "my choice is B"), called right ("option B is correct", "B is the correct
    answer"), in a choice-shaped line ("B) Mercury", "B: Mercury", a letter alone on a line,
    "Mercury, B."), or in brackets ("(B)"); and a choice's text where an answer stands: in an
    answer statement, before "is the answer", or at the edge of the first or the last sentence
    ("The closest planet is Mercury."). A letter followed by words may be followed by its
    choice's text, or by a paraphrase of it ("B) the three baskets" for "3 baskets": most of the
    choice's words, more than any other choice's). The reply gives no answer when those places
    disagree (it names two choices), when it lists the choices, unless what it states after the
    list names one of them and nothing else it states names another ("A) ... B) ... C) ... The
    correct answer is C"), when a letter and the text beside it are different choices (a
    conflict), when it answers with a letter that is no choice, when it answers with letters of
    which none can be read ("A) Rome" where Rome is no choice), when it says there is no answer
    ("the answer is not a single option"), or when the answer it gives is one it also rules out
    ("the answer is not B"). Whatever repeats the answer-format instruction it was given
    (`echoes`) is left out first. A reply cut off by the length limit (`cut_off`) is read by what
    it stated, not by its sentences."""
    found = _Choices(choices)
    text = _SPEAKER_NAME.sub(r"\1", strip_echoes(text, list(echoes)))
    stated: list[tuple[int, str]] = []  # (where, letter): what the reply states as its answer
    elsewhere: list[str] = []  # letters given in other places: choice-shaped lines, brackets, sentences
    listed: list[int] = []  # where each choice-shaped line starts
    shown: set[str] = set()  # every letter a choice-shaped line shows, read or not
    answered_with_letters = False
    unread: set[str] = set()  # letters its answer statements give with words that are no choice
    for where, letter, after, kind in _letter_places(text, found.letters):
        if kind in ("shaped", "bare"):
            shown.add(letter)
            listed.append(where)
        if kind == "bare":
            continue
        answered_with_letters = True
        if letter not in found.letters and "statement" in kind and (named := found.starting(letter)):
            stated.append((where, named))  # "The answer is: X" where the numeral X is a choice's text
            continue
        has_text = bool(after.strip()) and after.strip() != letter
        text_choice = found.starting(after) or (found.paraphrased(after) if has_text else None)
        reading = _mention(letter, text_choice, has_text, found.letters, reasons=kind == "statement")
        if reading is not None and reading.problem is not None:
            return reading
        if reading is None and "statement" in kind:
            unread.add(letter)
        elif reading is not None:
            (stated.append((where, reading.letter)) if "statement" in kind else elsewhere.append(reading.letter))
    for match in _statements(text):
        if not _LETTER.match(match.group(1)) and not _RULED_OUT.match(match.group(1).strip()):
            own_sentence = re.split(r"[.!?](?=\s)", match.group(1))[0]  # not the reasons after it
            stated += [(match.start(), c) for c in found.one_named_in(own_sentence)]
    for match in _answers_before(text):
        stated += [(match.start(), c) for c in found.one_named_in(match.group(1))]
    sentences = [] if cut_off else [s for s in _SENTENCE_END.split(text) if s.strip()]
    for sentence in dict.fromkeys(sentences[:1] + sentences[-1:]):
        elsewhere += found.stated_in(sentence)
    statements = _own_statements(text)
    if _disowns(statements) or _retracts(text) or _SELF_DOUBT.search(text):
        return ChoiceReading(None)
    ruled_out = {m.group(1) for rest in statements if (m := _RULED_OUT.match(rest))}
    for rest in statements:  # "the correct answer is not 'C' but 'A'": A is stated
        if _RULED_OUT.match(rest) and (instead := _BUT_INSTEAD.search(rest)) and instead.group(1) in found.letters:
            stated.append((0, instead.group(1)))
    for sentence in sentences:  # "The Santa Maria ... is no longer the answer"
        if denial := _NOT_THE_ANSWER_AFTER.search(sentence):
            ruled_out.update(found.one_named_in(sentence[: denial.start()]))
    if len(shown) > 1:  # a list of choices: only a single answer stated after it can stand
        after_list = {letter for where, letter in stated if where > max(listed)}
        if len(after_list) == 1 and {letter for _, letter in stated} == after_list:
            return _unless_ruled_out(after_list.pop(), ruled_out)
        given = {letter for _, letter in stated} | set(elsewhere)
        return ChoiceReading(None, {"judge": "several", "letters": sorted(given | shown)})
    # "the answer is not A, but B": A is dismissed, not given
    given = [g for g in dict.fromkeys([letter for _, letter in stated] + elsewhere) if g not in ruled_out]
    if len(set(given) | unread) > 1:
        return ChoiceReading(None, {"judge": "several", "letters": sorted(set(given) | unread)})
    if answered_with_letters and not (stated or [g for g in elsewhere if g in found.letters]):
        return ChoiceReading(None)
    return ChoiceReading(given[0] if given else None)


def _unless_ruled_out(letter: str, ruled_out: set[str]) -> ChoiceReading:
    """The letter, unless the reply also says the answer is not that letter."""
    return ChoiceReading(None) if letter in ruled_out else ChoiceReading(letter)


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

    def paraphrased(self, fragment: str) -> str | None:
        """The choice whose words the fragment's first clause mostly repeats ("large baskets of
        apples" for "Three large baskets"): at least half of the choice's content words, and more
        of them than of any other choice's."""
        clause = normalize(re.split(r"[,;:.!?()\n]", fragment, maxsplit=1)[0])
        words = set(clause.split()[:12]) - _FILLER
        shares = []
        for i, c in enumerate(self.texts):
            own = set(c.split()) - _FILLER
            shares.append((len(own & words) / len(own) if own else 0.0, self.letters[i]))
        shares.sort(reverse=True)
        best = shares[0] if shares else (0.0, None)
        # "North America" is no paraphrase of "South America": more than half of the choice's
        # words, and at least half of the clause's own
        if best[0] > 0.5 and (len(shares) == 1 or shares[1][0] < best[0]):
            own = set(self.texts[self.letters.index(best[1])].split()) - _FILLER
            if words and len(own & words) / len(words) >= 0.5:
                return best[1]
        return None

    def stated_in(self, sentence: str) -> list[str]:
        """The choice a sentence is about: it names one choice only, and is its text, or begins
        or ends with it ("The capital of Japan is Tokyo."); a choice named in passing is not."""
        norm = normalize(sentence)
        named = [] if _DENIES.search(sentence) else self.one_named_in(sentence)  # "X is no longer the answer"
        c = self.texts[self.letters.index(named[0])] if named else ""
        return named if c and (norm == c or norm.startswith(c + " ") or norm.endswith(" " + c)) else []


def _letter_places(text: str, letters: str):
    """(where, letter, the text after it, kind) for every place the reply gives a letter."""
    for match in _statements(text):
        letter = _LETTER.match(match.group(1))
        if letter:
            # "Answer: C) Carbon" puts a choice's text after the letter; "Answer: C, since ..." reasons
            shaped = any(mark in letter.group(2) for mark in ")]:")
            yield match.start(), letter.group(1), letter.group(3), "shaped statement" if shaped else "statement"
    for pattern in (_CHOSEN, _CALLED_RIGHT, _ANSWER_OF):
        for match in pattern.finditer(text):
            yield match.start(), match.group(1), "", "statement"
    content = [m.start() for m in re.finditer(r"(?m)^[ \t]*\S", text)]  # where each non-empty line starts
    edges = {content[0], content[-1]} if content else set()
    for match in _SHAPED.finditer(text):
        letter = match.group(1) or match.group(2) or match.group(3)
        bare = not match.group(4).strip()
        # a bare "A)" answers as the first or last line; inside prose it only shows a choice
        inside = bare and text.rfind("\n", 0, match.start()) + 1 not in edges and match.start() not in edges
        yield match.start(), letter, match.group(4), "bare" if inside else "shaped"
    for match in _TEXT_THEN_LETTER.finditer(text):
        yield match.start(), match.group(2), match.group(1), "trailing"
    for match in re.finditer(rf"\(([{letters}])\)", text):
        yield match.start(), match.group(1), "", "bracket"


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


def _retracts(text: str) -> bool:
    """It takes its answer back: a retraction after its last answer statement (or anywhere, when
    it states none)."""
    statements = _statements(text)
    return _RETRACTED.search(text, statements[-1].end() if statements else 0) is not None


def _own_statements(text: str) -> list[str]:
    """What follows each of the reply's own answer statements (not those about the other
    participant's answer), empty ones left out."""
    found = []
    for match in _statements(text):
        rest = match.group(1).strip()
        if rest and not _ABOUT_OTHERS.search(text[max(0, match.start() - 30) : match.start() + 8]):
            found.append(rest)
    return found


def _disowns(statements: list[str]) -> bool:
    """ "The answer is not possible", "... is not a single option": it says there is none ("this
    answer is not correct" judges an answer, and "the answer is not B" rules one out, instead)."""
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
    if _disowns(statements) or _retracts(text) or _SELF_DOUBT.search(text):
        return None
    stated, unanswered, ruled_out = [], False, {canonical_number(n) for n in _NOT_NUMBER.findall(text)}
    for rest in statements:
        if ruled := _RULED_OUT.match(rest):  # "the answer is not 12": 12 is ruled out, nothing is given
            if ruled.group(1)[-1].isdigit():
                ruled_out.add(canonical_number(ruled.group(1)))
            if (instead := _BUT_INSTEAD.search(rest)) and instead.group(1)[-1].isdigit():  # "... but 15"
                stated.append(canonical_number(instead.group(1)))
            continue
        sentence = re.split(r"[.!?](?=\s)", rest)[0]  # the statement's own sentence
        if _SYMBOLIC.search(sentence):  # "the answer is 10*N": no number is its answer
            return None
        number = _NUMBER.search(sentence)
        if number is not None and _OPERATOR.match(sentence[number.end() :]):  # "10 more than 20", "3 + 4 = 7"
            results = re.findall(rf"=\s*({_NUMBER.pattern})", sentence)
            number = _NUMBER.search(results[-1]) if results else None
        if number is None:
            unanswered = True  # "the answer is no", "the answer is correct"
        else:
            stated.append(canonical_number(number.group()))
    stated += _named_as_answer(text, ruled_out)
    if stated:
        answer = stated[0] if len(set(stated)) == 1 else None
    elif unanswered or cut_off:
        return None
    else:
        answer = _concluded(text)
    return None if answer in ruled_out else answer


def _named_as_answer(text: str, ruled_out: set[str]) -> list[str]:
    """Numbers named as the answer outside answer statements: "24 + 32 = 56 is the answer", and
    "I added them to get 321. This is the final answer." (the result of the sentence before).
    "43, which is not the answer" rules 43 out instead."""
    found = []
    for match in _answers_before(text):
        before = match.group(1)
        if _OTHERS_DOING.search(before):
            continue
        if re.fullmatch(r"(?i)\s*(?:this|that|it)", before):
            sentences = [s for s in _SENTENCE_END.split(text[: match.start()]) if _NUMBER.search(s)]
            result = _result_of(sentences[-1]) if sentences else None
        else:
            numbers = [m for m in _NUMBER.finditer(before) if not _OPERATOR.match(before[m.end() :])]
            result = canonical_number(numbers[-1].group()) if numbers else None
        if result is not None:
            found.append(result)
    for match in _NUMBER_ANSWER_OF.finditer(text):  # "= 12, which is the answer of 4": 4 is named too
        found.append(canonical_number(match.group(1)))
    for match in _NOT_THE_ANSWER.finditer(text):
        ruled_out.add(canonical_number(match.group(1)))
    return [n for n in found if n not in ruled_out]


def _concluded(text: str) -> str | None:
    """The result a working concludes on: a number alone, or the last result of its last
    sentence with numbers when that sentence concludes and does not deny ("... and then it is
    not possible for Elif to have 2 equal piles" concludes nothing)."""
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if _NUMBER.search(s)]
    if not sentences or text.rstrip().endswith("?"):  # a reply that ends on a question has not concluded
        return None
    last = sentences[-1].rstrip(".")
    if _NUMBER.fullmatch(last):  # a number alone, unless it numbers a list ("1. 2. -")
        after = text[text.rfind(last) + len(last) :][:1]
        return canonical_number(last) if after not in (".", ")") else None
    if not _CONCLUDES.search(last) or _DENIES.search(last) or _SYMBOLIC.search(last):
        return None
    return _result_of(last)


def _result_of(sentence: str) -> str | None:
    """The last result a sentence states that is not the start of an expression: "= 534, which
    is 4 times the size" is 534."""
    results = [m.group(1) for m in _RESULT.finditer(sentence) if not _OPERATOR.match(sentence[m.end() :])]
    return canonical_number(results[-1]) if results else None


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
    """The reply agrees with the other participant and says nothing against it."""
    return _AGREE_ONLY.search(text) is not None and _RESERVATION.search(text) is None


@dataclass
class Reading:
    answer: str | None
    only_agrees: bool  # the turn says it agrees and states no answer of its own
    problem: dict | None = None  # why a reply that names choices gets no answer (kept on the turn)
    cut: int | None = None  # the reply's length, when it was longer than the judge reads and was cut


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
        max_chars: int = 20_000,
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
        self.max_chars = max_chars

    def readable(self, text: str) -> str:
        """What is read of a reply: all of it, or, past `max_chars`, its first and last halves."""
        if len(text) <= self.max_chars:
            return text
        half = self.max_chars // 2
        return f"{text[:half]}\n\n{text[-half:]}"

    def read(self, text: str, question: Question, cut_off: bool = False) -> Reading:
        """`cut_off`: the reply stopped at the length limit; only what it stated counts."""
        cut = len(text) if len(text) > self.max_chars else None
        text = self.readable(text)
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
        return Reading(answer, answer is None and problem is None and says_only_agree(text), problem, cut)

    def read_batch(self, items: list[tuple[str, Question, bool]]) -> list[Reading]:
        """(text, question, cut off) -> readings; the llm judge asks its model in one batch."""
        if self.kind != "llm":
            return [self.read(*item) for item in items]
        requests = [
            ChatRequest(
                messages=(("user", self.prompt.format(question=show_question(q), reply=self.readable(text))),),
                sampling=Sampling(temperature=0.0, top_p=1.0, max_tokens=self.max_tokens),
                seed=0,
            )
            for text, q, _ in items
        ]
        readings = []
        for (text, q, _), done in zip(items, self.backend.generate(requests), strict=True):
            verdict = done.text.strip().lower().strip(".")
            cut = len(text) if len(text) > self.max_chars else None
            if verdict.startswith("agree"):
                readings.append(Reading(None, True, cut=cut))
            elif verdict.startswith(("disagree", "none")):
                readings.append(Reading(None, False, cut=cut))
            else:
                readings.append(replace(self.read(done.text, q), cut=cut))
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
