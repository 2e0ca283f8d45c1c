"""What the evaluation suites share: the record each suite is (`Suite`), what one evaluation's
suites may use (`Shared`), what a suite returns (`SuiteResult`), and the ways a suite gets its
answers: a protocol run through `simulate` (greedy, into its own run directory, so an interrupted
suite resumes), or the rows of an export of `agora mine`.

Agent A is the evaluated model; agent B is the partner (the persuader, the teammate), which is
the model itself unless `partner=` names another. A model is loaded once for all the suites.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from agents.config import AgentConfig, SamplingConfig
from agents.errors import AgoraError
from agents.requests import Backend, ChatRequest
from dialogue.core.judge import Judge
from dialogue.core.questions import DatasetConfig, Question
from dialogue.core.tree import DialogueTree
from dialogue.evaluation.config import EVALUATED, PARTNER, EvalConfig
from dialogue.protocols import make_protocol
from dialogue.protocols.base import Protocol
from dialogue.running.cache import CachedBackend, GenerationCache
from dialogue.running.config import SimulateConfig
from dialogue.running.rundir import RunDir
from dialogue.running.simulate import load_backend, simulate


@dataclass
class Shared:
    """What every suite of one evaluation may use: the exports by miner, the loaded backends."""

    exports: dict[str, Path]
    pool: dict[str, Backend] = field(default_factory=dict)

    def close(self) -> None:
        for backend in self.pool.values():
            backend.close()


@dataclass
class SuiteResult:
    records: dict[str, list]  # question id -> what that question contributed (metrics.py)
    details: dict = field(default_factory=dict)  # plain JSON the report and plots show beside the metrics


def by_question(keyed: list[tuple[str, object]]) -> dict[str, list]:
    """Records grouped by question id: the bootstrap resamples the groups."""
    groups: dict[str, list] = {}
    for key, record in keyed:
        groups.setdefault(key, []).append(record)
    return groups


@dataclass(frozen=True)
class Suite:
    """One evaluation: how it runs, the numbers it reports, what it says of itself in the report,
    and the export it reads (the `agora mine` miner that writes it), if any."""

    run: Callable[[EvalConfig, Path, Shared], SuiteResult]
    statistics: Callable[[dict], dict]  # the suite's details -> {metric name: statistic}
    about: str
    export: str | None = None
    # the questions it runs on, when not `dataset` (critique: arithmetic problems of its own), and
    # how the report names where they came from
    questions: Callable[[EvalConfig], DatasetConfig] | None = None
    source: Callable[[EvalConfig], str] | None = None
    plots: Callable[[dict, Path, str], list[str]] | None = None  # its own plots beside the metric bars


def simulate_suite(
    config: EvalConfig,
    shared: Shared,
    suite: str,
    folder: Path,
    protocol_config=None,
    protocol: Protocol | None = None,
    dataset: DatasetConfig | None = None,
    partner_speaks: bool = False,
) -> list[DialogueTree]:
    """The suite's protocol run into `folder`. The partner (agent B) is `partner=` only where it
    speaks (`partner_speaks`); elsewhere B's turns are fixed words or the model's own."""
    greedy = SamplingConfig(temperature=0.0, top_p=1.0, max_tokens=config.max_tokens)
    agents = {
        EVALUATED: AgentConfig(model=config.model, persona=config.persona.name, sampling=greedy),
        PARTNER: AgentConfig(
            model=(config.partner or config.model) if partner_speaks else config.model,
            persona=config.partner_persona if partner_speaks else config.persona.name,
            sampling=greedy,
        ),
    }
    run_config = SimulateConfig(
        out=str(folder),
        seed=config.seed,
        agents=agents,
        backend=config.backend,
        protocol=protocol_config or config.protocols[suite],
        dataset=dataset or config.dataset,
        prompts=config.prompts,
        stimulus=config.stimulus.model_copy(update={"agents": [EVALUATED]}),
        scale=config.scale,
        progress=config.progress,
    )
    if config.fewshot.count:
        from dialogue.evaluation.fewshot import FewShot, example_pool

        inner = protocol or make_protocol(run_config.protocol)
        protocol = FewShot(inner, example_pool(run_config.dataset, config.fewshot), config.fewshot, config.seed)
        # the run's config does not hold the examples: other settings grow in a run of their own
        settings = hashlib.sha256(config.fewshot.model_dump_json().encode()).hexdigest()[:8]
        folder = folder.with_name(f"{folder.name}-fewshot-{settings}")
        run_config = run_config.model_copy(update={"out": str(folder)})
    result = simulate(run_config, folder, protocol, shared.pool)
    if result.summary.failed_turns:
        raise AgoraError(
            f"{suite}: {result.summary.failed_turns} requests failed (their turns in {folder} say why); "
            "no metric is computed from an incomplete run. Run the same command again to regrow them"
        )
    return list(result.run.trees())


def export_rows(export: Path, dataset: DatasetConfig) -> list[dict]:
    """The rows of an export whose questions are in `dataset.split`, by the same rule that chose
    the questions of every other suite (not by which file `agora mine` put them in)."""
    rows = [
        row
        for path in sorted(export.glob("*.parquet"))
        for row in pq.read_table(path).to_pylist()
        if dataset.selects(row["question_id"])
    ]
    if not rows:
        raise AgoraError(
            f"data={export}: no rows for questions in split={dataset.split} (dataset.split). "
            "Mine more questions, or evaluate another split"
        )
    return rows


def source_questions(rows: list[dict], export: Path) -> dict[tuple[str, str], tuple[Question, Judge]]:
    """(run, tree id) -> the question and the source run's judge, for every row."""
    found = {}
    for run_path in dict.fromkeys(row["run"] for row in rows):
        run = RunDir(run_path)
        manifest = run.manifest()
        if manifest is None or not run.trees_path.exists():
            raise AgoraError(
                f"data={export}: its rows come from run={run_path}, which is not a run directory "
                "here; the questions and their answers are read from it"
            )
        config = manifest.run_config()
        judge = Judge(
            manifest.answer_kind or "choice",
            echoes=list(config.prompts.answer_format.values()),
            on_conflict=config.dataset.judge_conflict,
        )
        for tree in run.trees():
            found[(run_path, tree.tree_id)] = (tree.question, judge)
    return found


def with_persona(prompt: list[dict], persona: str) -> list[dict]:
    """The prompt under the evaluated persona: its system message replaced (or dropped)."""
    rest = [msg for msg in prompt if msg["role"] != "system"]
    return ([{"role": "system", "content": persona.strip()}] if persona.strip() else []) + rest


def generate(config: EvalConfig, shared: Shared, folder: Path, requests: list[ChatRequest]):
    folder.mkdir(parents=True, exist_ok=True)
    cache = GenerationCache(folder / "gen_cache.sqlite")
    backend = load_backend(shared.pool, config.model, config.backend, config.seed)
    try:
        return CachedBackend(backend, cache, f"{config.backend.type}:{config.model}").generate(requests)
    finally:
        cache.close()
