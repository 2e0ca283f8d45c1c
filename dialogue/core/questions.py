"""Questions with known answers: the bundled set, the arithmetic generator, and a user's data.

A user's file or Hugging Face dataset is read through a field mapping (`dataset.fields`), so
TriviaQA-, MMLU- and GSM8K-shaped records load without conversion. A row without a question
or an answer is an error naming the file and line, or is skipped and counted.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
import string
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from agents.config import Strict
from agents.errors import AgoraError

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
BUNDLED = Path(__file__).parent / "data"


@dataclass(frozen=True)
class Step:
    """One operation of an arithmetic problem: `before op n = after`."""

    before: int
    op: Literal["add", "sub", "mul", "div"]
    n: int
    after: int

    def apply(self, before: int) -> int:
        return {"add": before + self.n, "sub": before - self.n, "mul": before * self.n, "div": before // self.n}[
            self.op
        ]


class Question(BaseModel):
    question_id: str
    question: str
    choices: list[str] | None = None
    gold: str  # the letter for multiple choice, else the canonical answer
    aliases: list[str] = Field(default_factory=list)
    worked: list[Step] | None = None  # a generated arithmetic problem's exact operations: its step truth


_LEADING_ARTICLE = re.compile(r"^(?:a|an|the)\s+")
_THOUSANDS_SEPARATOR = re.compile(r"(?<=\d),(?=\d{3}\b)")
_PUNCTUATION_TO_SPACE = str.maketrans(string.punctuation, " " * len(string.punctuation))


def normalize(text: str) -> str:
    """Lower case, no accents, no thousands separators, no punctuation, no leading article,
    single spaces: how aliases and choice texts are compared. Only a leading article goes, so
    that "Vitamin A" stays itself."""
    if not text.isascii():  # ASCII has nothing to decompose, and this is most of the cost
        text = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.lower()
    text = _THOUSANDS_SEPARATOR.sub("", text).translate(_PUNCTUATION_TO_SPACE)
    return _LEADING_ARTICLE.sub("", " ".join(text.split()))


def content_key(question: Question) -> str:
    """A question's identity by what it asks, not by its id: its normalised text and its
    normalised choices in any order. The same question under another id (a file loaded without
    its id column, reordered, or renamed) has the same key, which is what the leakage check of
    `agora eval` compares."""
    choices = sorted(normalize(c) for c in question.choices or [])
    return hashlib.sha256(json.dumps([normalize(question.question), choices]).encode()).hexdigest()[:16]


class FieldMap(Strict):
    """Where each part of a question sits in a record; dotted paths reach into nested fields."""

    id: str | None = None
    question: str = "question"
    choices: str | list[str] | None = None  # a list column, or several columns in order
    answer: str = "answer"  # a letter, a 0-based index, or the text of the answer
    aliases: str | None = None


BUNDLED_FIELDS = FieldMap(id="id", choices="choices", aliases="aliases")


SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitRule:
    """Which split a question belongs to: a seeded hash of its id, so the same id lands in the
    same split in simulate, mine and eval, whatever else is in the data."""

    seed: int = 0
    fractions: tuple[tuple[str, float], ...] = (("train", 0.8), ("validation", 0.1), ("test", 0.1))

    def of(self, question_id: str) -> str:
        digest = hashlib.sha256(f"{self.seed}:{question_id}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        edge = 0.0
        for split, fraction in self.fractions:
            edge += fraction
            if u < edge:
                return split
        return self.fractions[-1][0]

    def to_json(self) -> dict:
        return {"split_seed": self.seed, "split_fractions": dict(self.fractions)}


class DatasetConfig(Strict):
    name: str = "general_knowledge"  # a bundled set or generator, when neither path nor hf_id
    path: str | None = None  # a .jsonl, .csv or .parquet file
    hf_id: str | None = None
    hf_config: str | None = None
    hf_split: str = "train"
    fields: FieldMap = FieldMap()
    answer_regex: str | None = None  # e.g. "####\\s*(.+)$" for GSM8K; group 1 is the answer
    split: Literal["train", "validation", "test", "all"] = "all"
    split_seed: int = 0
    split_fractions: dict[str, float] = {"train": 0.8, "validation": 0.1, "test": 0.1}
    offset: int = Field(0, ge=0)  # questions skipped, after the split is taken
    limit: int | None = Field(None, ge=1)
    # drop questions longer than this many tokens (the first agent's tokenizer), counted as skipped rows
    max_prompt_tokens: int | None = Field(None, ge=1)
    on_bad_row: Literal["error", "skip"] = "error"
    judge: Literal["auto", "choice", "number", "alias", "llm"] = "auto"
    # a reply whose letter and choice text are different choices ("A) Canberra", Canberra being C)
    judge_conflict: Literal["none", "letter", "text"] = "none"
    # a reply longer than this is read by its first and last halves (the turn records the cut):
    # a runaway reply must not stall the judge, and its answer is at an end
    judge_max_chars: int = Field(20_000, ge=1_000)
    # arithmetic generator
    count: int = Field(100, ge=1)  # problems generated; the split is taken from them
    steps: int = Field(3, ge=1)
    seed: int = 0

    @field_validator("split_fractions")
    @classmethod
    def _fractions(cls, fractions: dict[str, float]) -> dict[str, float]:
        if (
            set(fractions) != set(SPLITS)
            or any(v < 0 for v in fractions.values())
            or abs(sum(fractions.values()) - 1) > 1e-6
        ):
            raise ValueError("must give train, validation and test fractions that sum to 1")
        return fractions

    @property
    def split_rule(self) -> SplitRule:
        return SplitRule(self.split_seed, tuple((s, self.split_fractions[s]) for s in SPLITS))

    def selects(self, question_id: str) -> bool:
        return self.split == "all" or self.split_rule.of(question_id) == self.split


MIN_TEST_QUESTIONS = 30  # fewer, and a 95% interval on a rate is wider than most effects worth finding


def small_test_split(cfg: DatasetConfig, question_ids: list[str]) -> str | None:
    """A warning when the chosen questions leave the test split too small to evaluate on (None
    when it is large enough, or when the chosen split is train or validation by design)."""
    if cfg.split not in ("all", "test"):
        return None
    counts = dict.fromkeys(SPLITS, 0)
    for question_id in question_ids:
        counts[cfg.split_rule.of(question_id)] += 1
    if counts["test"] >= MIN_TEST_QUESTIONS:
        return None
    fractions = ", ".join(f"{s} {cfg.split_fractions[s]:g}" for s in SPLITS)
    held = ", ".join(f"{s} {n}" for s, n in counts.items())
    return (
        f"the {len(question_ids)} questions chosen hold {counts['test']} test questions ({held}; "
        f"dataset.split_fractions: {fractions}): an evaluation on fewer than {MIN_TEST_QUESTIONS} cannot tell "
        "models apart. Choose more questions (dataset.limit) or give the test split a larger share"
    )


@dataclass
class Loaded:
    questions: list[Question]
    source: str
    skipped: int = 0


def file_sha256(path: str | None) -> str | None:
    """The hash of a question file's bytes (None without one, or for a folder or Hub dataset)."""
    if path is None or not Path(path).is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_questions(cfg: DatasetConfig) -> Loaded:
    if cfg.path:
        path = Path(cfg.path).expanduser()
        if not path.is_file():
            raise AgoraError(f"dataset.path: no such file: {path}")
        loaded = _from_records(_read_file(path), cfg, str(path))
    elif cfg.hf_id:
        loaded = _from_records(_read_hf(cfg), cfg, cfg.hf_id)
    elif cfg.name == "arithmetic":
        loaded = Loaded(arithmetic_problems(cfg.count, cfg.seed, cfg.steps), "arithmetic")
    elif (BUNDLED / f"{cfg.name}.jsonl").is_file():
        bundled = cfg.model_copy(update={"fields": BUNDLED_FIELDS, "answer_regex": None})
        loaded = _from_records(_read_file(BUNDLED / f"{cfg.name}.jsonl"), bundled, cfg.name)
    else:
        bundled = sorted(p.stem for p in BUNDLED.glob("*.jsonl")) + ["arithmetic"]
        raise AgoraError(
            f"dataset.name: unknown dataset '{cfg.name}' (bundled: {', '.join(bundled)}); "
            "set dataset.path or dataset.hf_id for your own data"
        )
    if not loaded.questions:
        raise AgoraError(f"dataset {loaded.source}: no usable questions")
    ids = [q.question_id for q in loaded.questions]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise AgoraError(f"dataset {loaded.source}: question id '{dup}' appears twice")
    loaded.questions = [q for q in loaded.questions if cfg.selects(q.question_id)][cfg.offset :]
    if cfg.limit:
        loaded.questions = loaded.questions[: cfg.limit]
    if not loaded.questions:
        raise AgoraError(
            f"dataset {loaded.source}: no questions left in split={cfg.split} after "
            f"offset={cfg.offset} (dataset.split, dataset.offset)"
        )
    return loaded


def show_question(question: Question) -> str:
    """The question as agents read it: the text, then one "X) choice" line per choice."""
    if not question.choices:
        return question.question
    options = "\n".join(f"{LETTERS[i]}) {c}" for i, c in enumerate(question.choices))
    return f"{question.question}\n{options}"


def judge_kind(cfg: DatasetConfig, questions: list[Question]) -> str:
    """The extractor for this data: the configured one, or one chosen from its shape."""
    if cfg.judge != "auto":
        return cfg.judge
    if all(q.choices for q in questions):
        return "choice"
    if all(_is_number(q.gold) for q in questions):
        return "number"
    return "alias"


# -- reading records ------------------------------------------------------------------------

Record = tuple[str, dict[str, Any] | None, str | None]  # (location, record, parse error)


def _read_file(path: Path) -> Iterator[Record]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        with path.open(encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    yield f"{path}:{line_no}", None, f"invalid JSON ({e.msg})"
                    continue
                if not isinstance(record, dict):
                    yield f"{path}:{line_no}", None, "not a JSON object"
                    continue
                yield f"{path}:{line_no}", record, None
    elif suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            for record in reader:
                yield f"{path}:{reader.line_num}", dict(record), None
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        for row_no, record in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield f"{path}: row {row_no}", record, None
    else:
        raise AgoraError(f"dataset.path: {path}: expected .jsonl, .csv or .parquet")


def _read_hf(cfg: DatasetConfig) -> Iterator[Record]:
    import datasets

    try:
        data = datasets.load_dataset(cfg.hf_id, cfg.hf_config, split=cfg.hf_split)
    except Exception as e:
        raise AgoraError(f"dataset.hf_id: could not load '{cfg.hf_id}': {e}") from e
    for row_no, record in enumerate(data, start=1):
        yield f"{cfg.hf_id}[{cfg.hf_split}] row {row_no}", record, None


def _from_records(records: Iterator[Record], cfg: DatasetConfig, source: str) -> Loaded:
    questions, skipped = [], 0
    for index, (where, record, problem) in enumerate(records):
        if problem is None:
            try:
                questions.append(_to_question(record, cfg.fields, cfg.answer_regex, index))
                continue
            except ValueError as e:
                problem = str(e)
        if cfg.on_bad_row == "error":
            raise AgoraError(f"{where}: {problem} (dataset.on_bad_row=skip skips such rows)")
        skipped += 1
    return Loaded(questions, source, skipped)


def _to_question(record: dict, fields: FieldMap, answer_regex: str | None, index: int) -> Question:
    question = _get(record, fields.question)
    if question is None or not str(question).strip():
        raise ValueError(f"row has no question (field '{fields.question}')")
    answer = _get(record, fields.answer)
    if answer is None or not str(answer).strip():
        raise ValueError(f"row has no answer (field '{fields.answer}')")
    if answer_regex:
        match = re.search(answer_regex, str(answer), flags=re.MULTILINE)
        if not match:
            raise ValueError(f"answer does not match dataset.answer_regex: {str(answer)[:60]!r}")
        answer = match.group(1).strip()
    choices = _choices(record, fields.choices)
    qid = _get(record, fields.id) if fields.id else None
    aliases = _get(record, fields.aliases) if fields.aliases else None
    if isinstance(aliases, str):
        aliases = [aliases]
    aliases = [str(a) for a in aliases or []]
    if choices:
        gold = _choice_letter(answer, choices)
    else:
        gold = str(answer).strip()
        aliases = [gold, *(a for a in aliases if a != gold)]
    return Question(
        question_id=str(qid) if qid is not None else f"q{index:05d}",
        question=str(question).strip(),
        choices=choices,
        gold=gold,
        aliases=aliases,
    )


def _get(record: dict, dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _choices(record: dict, spec: str | list[str] | None) -> list[str] | None:
    if spec is None:
        return None
    values = _get(record, spec) if isinstance(spec, str) else [_get(record, c) for c in spec]
    if isinstance(values, str):  # a CSV cell holding a JSON list
        try:
            values = json.loads(values)
        except json.JSONDecodeError:
            raise ValueError(f"choices field '{spec}' is not a list") from None
    if not isinstance(values, list) or len(values) < 2 or any(v is None for v in values):
        raise ValueError(f"row has no usable choices (field {spec!r})")
    return [str(v) for v in values]


def _choice_letter(answer: Any, choices: list[str]) -> str:
    text = str(answer).strip()
    if len(text) == 1 and text.upper() in LETTERS[: len(choices)] and text.isupper():
        return text
    if isinstance(answer, int) or text.isdigit():
        index = int(text)
        if 0 <= index < len(choices):
            return LETTERS[index]
    for i, choice in enumerate(choices):
        if choice.strip().lower() == text.lower():
            return LETTERS[i]
    raise ValueError(f"answer {text!r} is not a letter, an index or the text of a choice")


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


# -- the arithmetic generator ---------------------------------------------------------------

_NAMES = ["Ada", "Bruno", "Chen", "Dara", "Elif", "Farid", "Greta", "Hiro", "Imani", "Jonas"]
_ITEMS = ["marbles", "stamps", "apples", "books", "coins", "stickers", "pencils", "shells"]


def arithmetic_problems(count: int, seed: int, steps: int = 3) -> list[Question]:
    """Multi-step word problems with exact integer answers; the same seed gives the same set."""
    return [question for question, _ in arithmetic_worked(count, seed, steps)]


def arithmetic_worked(count: int, seed: int, steps: int = 3) -> list[tuple[Question, list[Step]]]:
    """The problems of `arithmetic_problems`, each with its exact steps."""
    rng = random.Random(seed)
    problems = []
    for index in range(count):
        name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
        value = rng.randint(5, 60)
        sentences = [f"{name} has {value} {item}."]
        worked = []
        for _ in range(steps):
            before = value
            op = rng.choice(["add", "sub", "mul", "div"] if value > 1 else ["add", "mul"])
            if op == "add":
                n = rng.randint(2, 40)
                value += n
                sentences.append(f"Then {name} is given {n} more.")
            elif op == "sub":
                n = rng.randint(1, value - 1)
                value -= n
                sentences.append(f"Then {name} gives away {n}.")
            elif op == "mul":
                n = rng.randint(2, 4)
                value *= n
                sentences.append(f"Then {name}'s collection grows to {n} times its size.")
            else:
                divisors = [d for d in range(2, 7) if value % d == 0]
                if not divisors:
                    n = rng.randint(2, 30)
                    value += n
                    sentences.append(f"Then {name} finds {n} more.")
                    op = "add"
                else:
                    n = rng.choice(divisors)
                    value //= n
                    sentences.append(f"Then {name} splits them into {n} equal piles and keeps just one pile.")
            worked.append(Step(before, op, n, value))
        sentences.append(f"How many {item} does {name} have now?")
        question = Question(
            question_id=f"arith-{seed}-{index:04d}",
            question=" ".join(sentences),
            gold=str(value),
            aliases=[str(value)],
            worked=worked,
        )
        problems.append((question, worked))
    return problems
