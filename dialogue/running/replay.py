"""`agora replay`: the recorded dialogue, with one agent's turns written anew.

Every turn of the named agent along the recorded branches is generated again (by another model,
persona or sampling, as overridden), while every other agent's turns stay word for word as
recorded: a counterfactual of how that agent would have answered the same persuasion. The
tree keeps the recorded shape, so a replayed turn is answered by the recorded reply even where
the new one would have ended the branch. The new run directory's manifest names its source,
and starts with a copy of the source's generation cache, so a replay with the same model and
seed is served from it and reproduces the recorded turns.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

from omegaconf import OmegaConf
from pydantic import field_validator

from agents.config import Strict
from agents.errors import AgoraError
from dialogue.core.questions import judge_kind
from dialogue.core.tree import DialogueTree, Turn
from dialogue.protocols import make_protocol
from dialogue.protocols.base import ChildSpec, Delegating, Protocol
from dialogue.records import RunManifest
from dialogue.running.config import SimulateConfig, config_of, system_messages, validate
from dialogue.running.rundir import RunDir, now
from dialogue.running.simulate import Result, check_local_models, grow
from dialogue.running.summary import Summarizer


class Replay(Delegating):
    """The source run's protocol, regrowing recorded trees: the named agent speaks, the rest is given."""

    def __init__(self, protocol: Protocol, sources: dict[str, DialogueTree], agent: str):
        super().__init__(protocol)
        self.sources, self.agent = sources, agent

    def first(self, tree: DialogueTree) -> ChildSpec:
        source = self.sources[tree.tree_id]
        return self._spec(source.turn(source.root()))

    def children(self, tree: DialogueTree, turn: Turn) -> list[ChildSpec]:
        source = self.sources[tree.tree_id]
        return [self._spec(source.turn(c)) for c in source.children(turn.id)]

    def _spec(self, turn: Turn) -> ChildSpec:
        return ChildSpec(turn.speaker, turn.instruction, 1, None if turn.speaker == self.agent else turn.text)


def replay_config(source: RunManifest, agent: str, overrides: dict, out: str) -> SimulateConfig:
    """The source run's config with `overrides` (a nested dict) merged into agent `agent`."""
    config = OmegaConf.create(source.config)
    if agent not in config.agents:
        raise AgoraError(f"replay.agent: '{agent}' is not an agent of the source run ({', '.join(config.agents)})")
    others = set(overrides) - {agent}
    if others:
        raise AgoraError(f"agents.{sorted(others)[0]}: a replay changes only replay.agent={agent}")
    config.agents[agent] = OmegaConf.merge(config.agents[agent], overrides.get(agent, {}))
    config.out = out
    return validate(config)


class ReplaySettings(Strict):
    agent: str  # whose turns are generated again
    trees: list[str] | None = None  # null: every tree of the source run

    @field_validator("trees", mode="before")
    @classmethod
    def _listed(cls, trees):
        if isinstance(trees, str | int):  # replay.trees=a,b or a single id
            return [t.strip() for t in str(trees).split(",") if t.strip()]
        return None if trees is None else [str(t) for t in trees]


class ReplayConfig(Strict):
    """`agora replay` (conf/replay.yaml); `agents.NAME.KEY=VALUE` overrides the source run's agent."""

    run: str
    out: str
    progress: bool = True
    replay: ReplaySettings
    agents: dict[str, dict] = {}


def replay_command_config(config: ReplayConfig) -> Result:
    """`agora replay` with its validated config."""
    return replay(config.run, config.replay.agent, config.agents, config.out, config.replay.trees, config.progress)


def replay(
    source_dir: str, agent: str, overrides: dict, out: str, tree_ids: list[str] | None = None, progress: bool = True
) -> Result:
    source = RunDir(source_dir)
    manifest = source.manifest()
    if manifest is None or not source.trees_path.exists():
        raise AgoraError(f"run={source_dir}: not a run directory (no manifest.json or trees.jsonl)")
    config = replay_config(manifest, agent, overrides, out).model_copy(update={"progress": progress})
    check_local_models(config)
    personas = system_messages(config)
    sources = {t.tree_id: t for t in source.trees()}
    wanted = list(sources) if tree_ids is None else [str(t) for t in tree_ids]
    missing = [t for t in wanted if t not in sources]
    if missing:
        raise AgoraError(f"replay.trees: {missing[0]} is not a tree of run={source_dir}")
    questions = [sources[t].question for t in wanted]
    kind = judge_kind(config.dataset, questions)
    base_kind = judge_kind(config.dataset.model_copy(update={"judge": "auto"}), questions)

    run = RunDir(out)
    with run.writing():
        fresh = run.manifest() is None
        run.begin(
            RunManifest(
                command="replay",
                source_run=str(Path(source_dir).resolve()),
                replay_agent=agent,
                trees=wanted,
                config=config_of(config),
                models={n: a.model for n, a in config.agents.items()},
                seed=config.seed,
                answer_kind=base_kind,
                replayed_at=now(),
            )
        )
        if fresh and source.cache_path.exists():
            _copy_cache(source.cache_path, run.cache_path)
        protocol = Replay(make_protocol(config.protocol), sources, agent)
        summarizer = Summarizer({config.protocol.responder}, protocol.free_form)
        stats = grow(config, protocol, personas, run, questions, kind, base_kind, on_tree=summarizer.add)
        summary = summarizer.result()
        run.finish(summary.to_dict())
    return Result(run, stats, summary, 0)


def _copy_cache(source: Path, target: Path) -> None:
    with sqlite3.connect(str(source)) as src, sqlite3.connect(str(target)) as dst:
        src.backup(dst)


def diff(run_a: str, run_b: str) -> str:
    """Where the replayed agent's answers differ between two runs of the same trees: per tree and
    level, how many of its turns changed answer, and in which direction."""
    a, b = RunDir(run_a), RunDir(run_b)
    manifests = [a.manifest(), b.manifest()]
    agent = next((m.replay_agent for m in manifests[::-1] if m is not None and m.replay_agent), None)
    if agent is None:
        raise AgoraError(f"neither {run_a} nor {run_b} is a replay (no replay_agent in its manifest)")
    trees_a = {t.tree_id: t for t in a.trees()}
    rows: Counter = Counter()
    for tree_b in b.trees():
        tree_a = trees_a.get(tree_b.tree_id)
        if tree_a is None:
            continue
        for turn in tree_b.turns():
            if turn.speaker != agent or turn.id not in tree_a.graph:
                continue
            before = tree_a.turn(turn.id)
            key = (tree_b.tree_id, turn.depth)
            rows[key + ("turns",)] += 1
            rows[key + ("changed",)] += before.answer != turn.answer
            rows[key + ("correct->wrong",)] += before.correct is True and turn.correct is False
            rows[key + ("wrong->correct",)] += before.correct is False and turn.correct is True
    columns = ["turns", "changed", "correct->wrong", "wrong->correct"]
    keys = sorted({k[:2] for k in rows})
    lines = [
        f"agent {agent}: {run_a} -> {run_b}",
        "",
        "| tree | level | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for tree_id, level in keys:
        lines.append(f"| {tree_id} | {level} | " + " | ".join(str(rows[(tree_id, level, c)]) for c in columns) + " |")
    totals = [sum(rows[k + (c,)] for k in keys) for c in columns]
    lines.append("| all | | " + " | ".join(map(str, totals)) + " |")
    return "\n".join(lines)
