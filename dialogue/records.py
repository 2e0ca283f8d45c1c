"""The files one stage writes and a later stage reads: one pydantic record each, versioned.

    manifest.json   simulate, replay -> mine, view, eval, replay     RunManifest
    trees.jsonl     simulate, replay -> every later stage            tree_from_line (a line each)
    card.json       mine -> train, eval                              Card
    train.json      train -> eval (which questions a model has seen)  TrainSummary
    metrics.json    eval -> eval compare                             EvalMetrics
    iterate.json    iterate -> iterate (a rerun continues from it)     LoopState

Every file carries `schema_version` (a tree line in its graph attributes). A reader brings an
older file up to date with the migrations written for it, one version at a time, and refuses a
newer one, naming both versions: an older agora must not misread a newer run. Files written before
records carried a version are version 0.

Changing what a file holds means: raise the record's VERSION, and add to its MIGRATIONS the
function that turns a file of the version before into this one (docs/design.md, "Records").
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from agents.errors import AgoraError
from agents.files import write_atomic
from dialogue.core.tree import SCHEMA_VERSION as TREE_VERSION
from dialogue.core.tree import DialogueTree, check_tree
from dialogue.running.config import SimulateConfig

Migration = Callable[[dict], dict]


def upgrade(data: dict, current: int, migrations: dict[int, Migration], where: str, header=None) -> dict:
    """`data` as version `current` of its record: migrated step by step from an older version,
    refused when newer. `header(data)` is the dict that holds the version (the file itself,
    or a tree line's graph attributes)."""
    header = header or (lambda record: record)
    version = header(data).get("schema_version", 0)
    if not isinstance(version, int) or version < 0:
        raise AgoraError(f"{where}: schema_version {version!r} is not a version number")
    if version > current:
        raise AgoraError(
            f"{where}: written with schema version {version}, and this agora reads version {current} "
            "and older; upgrade agora to read it"
        )
    while version < current:
        if version not in migrations:
            raise AgoraError(f"{where}: schema version {version} is older than any this agora can read")
        data = migrations[version](copy.deepcopy(data))
        version += 1
        header(data)["schema_version"] = version
    return data


class UnreadableRecord(AgoraError):
    """A record's file is not JSON at all (cut short by a full disk, say), as opposed to a
    record of another version or shape."""


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UnreadableRecord(f"{path}: cannot be read as JSON ({e})") from None


class Record(BaseModel):
    """A file that crosses a stage boundary. `read` and `write` are its only way to and from disk."""

    model_config = ConfigDict(extra="forbid")
    VERSION: ClassVar[int] = 1
    MIGRATIONS: ClassVar[dict[int, Migration]] = {}  # version v -> v + 1

    schema_version: int = 1  # a new record is written with its class's VERSION (below)

    @model_validator(mode="before")
    @classmethod
    def _current_version(cls, data):
        return {"schema_version": cls.VERSION, **data} if isinstance(data, dict) else data

    @classmethod
    def read(cls, path: str | Path) -> Record:
        path = Path(path)
        data = _read_json(path)
        if not isinstance(data, dict):
            raise AgoraError(f"{path}: holds {type(data).__name__}, not a {cls.__name__} record")
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: dict, where: str) -> Record:
        data = upgrade(data, cls.VERSION, cls.MIGRATIONS, where)
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            key = ".".join(str(part) for part in first["loc"]) or "(record)"
            raise AgoraError(f"{where}: {key}: {first['msg']} (a {cls.__name__} record)") from None

    def write(self, path: str | Path) -> None:
        """Written beside and renamed: a reader sees the old file or the new one, whole."""
        write_atomic(Path(path), json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False))


# -- trees.jsonl ------------------------------------------------------------------------------

TREE_MIGRATIONS: dict[int, Migration] = {}  # a whole tree line of version v -> v + 1


def tree_line(data: dict, where: str) -> dict:
    """One line of trees.jsonl (networkx node-link data) as this version writes it."""
    if data["graph"].get("schema_version", 0) != TREE_VERSION:
        data = upgrade(data, TREE_VERSION, TREE_MIGRATIONS, where, header=lambda line: line["graph"])
    return data


def tree_from_line(data: dict, where: str) -> DialogueTree:
    """A tree from one line of trees.jsonl, brought up to date and checked whole: a ValueError
    or KeyError naming what is wrong, if it is not."""
    tree = DialogueTree.from_json(tree_line(data, where))
    check_tree(tree)
    return tree


# -- manifest.json ----------------------------------------------------------------------------


class DatasetSource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str
    questions: int
    skipped_rows: int = 0
    sha256: str | None = None  # of the question file (dataset.path): a file edited in place is noticed


class RunManifest(Record):
    """What made a run, and how far it got. `status` is "complete" only when every tree was
    written with no failed turn."""

    VERSION: ClassVar[int] = 2

    command: Literal["simulate", "replay"]
    config: dict[str, Any]  # the validated config, less where it is written and how it is scheduled
    models: dict[str, str]
    seed: int
    answer_kind: str | None = None  # which prompts.answer_format the agents were given
    status: Literal["running", "complete", "incomplete"] = "running"
    started_at: str | None = None
    finished_at: str | None = None
    resumed_at: list[str] = []
    counts: dict[str, Any] | None = None  # the run's summary, when it finished
    argv: list[str] = []
    versions: dict[str, str] = {}
    git_revision: str | None = None
    dataset: DatasetSource | None = None  # simulate: where the questions came from
    source_run: str | None = None  # replay: the run replayed, and whose turns were generated again
    replay_agent: str | None = None
    trees: list[str] | None = None
    replayed_at: str | None = None

    def run_config(self) -> SimulateConfig:
        """The config as the run's code reads it (typed; `out` left empty)."""
        return SimulateConfig.model_validate({**self.config, "out": ""})


def _manifest_from_0(data: dict) -> dict:
    """Manifests before records: the same keys, unversioned."""
    return data


def _manifest_from_1(data: dict) -> dict:
    """Version 2 records the question file's hash (`dataset.sha256`); a run from before has none,
    and its file is not checked."""
    return data


RunManifest.MIGRATIONS = {0: _manifest_from_0, 1: _manifest_from_1}


# -- card.json --------------------------------------------------------------------------------


class SourceRun(BaseModel):
    """One mined run, as the card records it."""

    model_config = ConfigDict(extra="forbid")
    run: str
    status: str | None
    trees: int
    bad_lines: int
    responders: list[str] | Literal["all"]
    failed_parses: int
    unreadable: dict[str, int]
    conflicts: dict[str, int]
    report: dict[str, int] | None = None


class PersuasionCounts(BaseModel):
    """One split's persuasion turns: how many gave pairs, and why the others gave none."""

    model_config = ConfigDict(extra="forbid")
    turns: int
    with_pairs: int
    lost: dict[str, int]  # reason (dialogue/mining/rules.py LOST_REASONS) -> turns


class Balance(BaseModel):
    """One split under miner.balance: whether it could be balanced, and its rows by label before."""

    model_config = ConfigDict(extra="forbid")
    balanced: bool
    accept: int
    resist: int


class Card(Record):
    """What `agora mine` wrote, from what, and what it lost on the way."""

    miner: str
    rows: int
    counts: dict[str, dict[str, int]]  # split / label / level / instruction -> rows
    questions: dict[str, int]  # split -> questions with rows
    question_ids: dict[str, list[str]]
    # split -> question id -> content key: `agora eval` finds trained-on questions under any id
    question_keys: dict[str, dict[str, str | None]]
    sources: list[SourceRun]
    bad_lines: list[str]
    config: dict[str, Any]  # the mine config
    failed_parses: int = 0
    split_rule: dict[str, Any] | None = None
    judge: dict[str, dict[str, int]] = {}
    duplicates: dict[str, int] = {}  # identical training rows, written once
    mined_questions: dict[str, int] = {}  # split -> questions read, rows or not
    persuasions: dict[str, PersuasionCounts] | None = None  # by split
    balance: dict[str, Balance] | None = None  # by split
    report: dict[str, int] | None = None
    incomplete_runs: list[str] = []

    def train_questions(self) -> dict[str, str | None]:
        """The train split's questions: id -> content key (None where the card predates keys)."""
        return self.question_keys.get("train", {})


def _card_from_0(data: dict) -> dict:
    """Cards before records. The oldest named no questions: their ids are then unknown here (the
    leakage check reads them from the train files), and none had content keys."""
    data = dict(data)
    ids = data.setdefault("question_ids", {})
    data.setdefault("question_keys", {split: dict.fromkeys(found) for split, found in ids.items()})
    data.setdefault("questions", {split: len(found) for split, found in ids.items()})
    data["sources"] = [{"bad_lines": 0, "failed_parses": 0, **s} for s in data.get("sources", [])]
    for source in data["sources"]:
        source.setdefault("unreadable", {})
        source.setdefault("conflicts", {})
        source.setdefault("responders", "all")
    return data


Card.MIGRATIONS = {0: _card_from_0}


# -- train.json -------------------------------------------------------------------------------


class TrainData(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str  # the export learnt from, made absolute
    labels: list[str] | None = None


class TrainSummary(Record):
    """A finished `agora train`: written last, so a model folder without it is not finished."""

    trainer: str
    stages: dict[str, dict[str, Any]]  # stage -> its final step and metrics
    model: str  # the start model: a local path made absolute, or an alias or Hub id
    data: TrainData
    saved: Literal["adapter", "weights"]
    processes: int = 1


def _train_from_0(data: dict) -> dict:
    """Summaries before records: the same keys (the oldest lack `data`; see train_summary)."""
    return data


TrainSummary.MIGRATIONS = {0: _train_from_0}


def train_summary(folder: Path) -> TrainSummary:
    """`folder/train.json`. The oldest summaries named their export only in train_config.json,
    beside them: a migration of the file alone cannot see it, so it is read here."""
    path = folder / "train.json"
    data = _read_json(path)
    if "data" not in data and data.get("schema_version", 0) == 0:
        data["data"] = _read_json(folder / "train_config.json")["run"]["data"]
    return TrainSummary.parse(data, str(path))


# -- metrics.json -----------------------------------------------------------------------------


class SuiteResult(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metrics: dict[str, dict[str, Any]]  # metric -> its estimate (value, interval, n, method)
    questions: int
    source: str
    details: dict[str, Any] = {}
    records: dict[str, Any] | None = None  # per-question records: what `agora eval compare` pairs
    plots: list[str] = []


class EvalMetrics(Record):
    """A finished `agora eval`: written last."""

    model: str
    partner: str
    persona: str
    stimulus: str
    seed: int
    resamples: int
    overrides: list[str] = []
    data: dict[str, Any]
    overlap: dict[str, list[str]] = {}
    suites: dict[str, SuiteResult]
    not_run: dict[str, str] = {}
    config: dict[str, Any]
    finished_at: str | None = None


def _metrics_from_0(data: dict) -> dict:
    """Evaluations before records: the oldest had no stimulus, partner, overrides or data keys."""
    return {
        "stimulus": "none",
        "partner": data.get("model"),
        "overrides": [],
        "data": {},
        "overlap": {},
        "not_run": {},
        "config": {},
        **data,
    }


EvalMetrics.MIGRATIONS = {0: _metrics_from_0}


# -- iterate.json -----------------------------------------------------------------------------


class RoundRecord(BaseModel):
    """What one round of `agora iterate` did, filled in stage by stage."""

    model_config = ConfigDict(extra="forbid")
    offset: int  # where its questions start in the train split
    questions: int  # how many it simulated
    models_before: dict[str, str]  # trained agent -> the model it argued with
    models_after: dict[str, str] = {}  # trained agent -> its model after the round
    rows: dict[str, int] = {}  # trained agent -> the train rows mined for it
    not_trained: dict[str, str] = {}  # trained agent -> why it kept its model this round
    # the evaluation of the round's models, in the loop's folder: its own round-R/eval, or an earlier
    # one where they did not change
    evaluation: str | None = None
    finished_at: str | None = None  # set once the round's evaluation is written


class LoopState(Record):
    """`iterate.json`: a loop's config and what each round did, rewritten after every stage."""

    config: dict[str, Any]  # what makes the loop what it is (IterateConfig, less rounds and out)
    rounds: list[RoundRecord] = []
    status: Literal["running", "complete"] = "running"
