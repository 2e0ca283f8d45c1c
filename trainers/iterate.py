"""`agora iterate`: the closed loop. Round r simulates on questions of the train split it has not
used yet, with the models round r-1 trained (the base model in round 0); mines each trained
agent's own data from the trees; trains each agent further on it; and evaluates one agent's new
model on the test split, which no round simulates on. The loop's report puts every metric of
every round beside the base model's, paired by question.

Layout of `out`:

    iterate.json          the loop's config and what each round did (LoopState), after every stage
    base/eval/            `agora eval` of the base model: where the rounds start from
    round-R/run/          `agora simulate`: the round's trees
    round-R/data/AGENT/   `agora mine`: the trained agent's rows from them
    round-R/models/AGENT/ `agora train`: its model after the round (a LoRA adapter of the base)
    round-R/eval/         `agora eval` of the evaluated agent's model after the round (none when
                          no model it depends on changed: the round reuses the last evaluation)
    report.md, report.html, report.png

Each stage is the command of that name given the overrides iterate.json records, and resumes as
that command does; a stage whose output is finished is skipped. A killed loop run again with the
same command therefore goes on from the stage it was in, and a finished loop run again with more
`rounds` goes on to them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig
from pydantic import Field, model_validator

from agents.config import Strict
from agents.errors import AgoraError
from dialogue.core.questions import load_questions
from dialogue.records import Card, LoopState, RoundRecord
from dialogue.running.config import validate
from dialogue.running.rundir import RunDir, differing_keys, now, one_writer

# The keys each stage's overrides may not set: the loop sets them, round by round.
SET_BY_THE_LOOP = {
    "simulate": ("out", "seed", "dataset.split", "dataset.offset", "dataset.limit"),
    "mine": ("run", "out", "miner"),
    "train": ("data", "data.path", "model", "out", "trainer", "resume", "overwrite", "seed"),
    "eval": ("suite", "model", "partner", "out", "seed", "overwrite", "dataset.split"),
}


class TrainedAgent(Strict):
    """How one agent learns from a round: the miner that gives it rows, the trainer it runs."""

    miner: str  # a name in conf/miner/
    trainer: str  # a name in conf/trainer/
    mine: list[str] = []  # more `agora mine` overrides for this agent
    train: list[str] = []  # more `agora train` overrides for this agent


class IterateConfig(Strict):
    out: str
    rounds: int = Field(ge=1)
    questions_per_round: int = Field(ge=1)
    base: str  # the model every trained agent starts from
    trained: dict[str, TrainedAgent] = Field(min_length=1)  # agent name -> how it learns
    evaluate: str  # the trained agent whose model each round evaluates
    suites: list[str] = Field(min_length=1)  # agora eval's suite=
    partner: str = "base"  # its partner in the suites: base, or another trained agent (its model of the round)
    # each stage's own overrides, as on its command line (`simulate.KEY=VALUE` and so on)
    simulate: list[str] = []
    mine: list[str] = []
    train: list[str] = []
    eval: list[str] = []
    seed: int = 0
    progress: bool = True

    @model_validator(mode="after")
    def _agents(self) -> IterateConfig:
        if self.evaluate not in self.trained:
            raise ValueError(f"evaluate: '{self.evaluate}' is not a trained agent ({', '.join(self.trained)})")
        if self.partner != "base" and self.partner not in self.trained:
            trained = ", ".join(self.trained)
            raise ValueError(f"partner: '{self.partner}' is neither base nor a trained agent ({trained})")
        for stage, keys in SET_BY_THE_LOOP.items():
            overrides = [*getattr(self, stage), *(o for t in self.trained.values() for o in getattr(t, stage, []))]
            for override in overrides:
                key = override.split("=", 1)[0].lstrip("+~")
                if key in keys:
                    raise ValueError(f"{stage}: '{override}': the loop sets {key} itself, round by round")
        return self

    def identity(self) -> dict:
        """What makes the loop what it is: a rerun may add rounds, not change anything else."""
        return self.model_dump(mode="json", exclude={"out", "rounds", "progress"})


def composed(name: str, overrides: list[str]) -> DictConfig:
    """conf/NAME.yaml with `overrides`, as `agora NAME` would compose it."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside `agora iterate`'s own Hydra app
        return compose(config_name=name, overrides=overrides)
    with initialize_config_module(config_module="conf", version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def iterate(config: IterateConfig, log=print) -> LoopState:
    out = Path(config.out)
    with one_writer(out):
        state = _begin(out, config)
        train_questions = _train_questions(config)
        models = dict.fromkeys(config.trained, config.base)
        _evaluate(config, config.base, _partner(config, models), out / "base" / "eval", log)
        evaluations = [("base", out / "base" / "eval")]
        for r in range(config.rounds):
            if r == len(state.rounds):
                offset, count = _window(r, config.questions_per_round, train_questions)
                state.rounds.append(RoundRecord(offset=offset, questions=count, models_before=dict(models)))
                state.write(out / "iterate.json")
            record = state.rounds[r]
            log(f"== round {r}: {record.questions} train questions from {record.offset}", flush=True)
            run = _simulate(config, record, out / f"round-{r}" / "run", log)
            _train_agents(config, state, r, run, log)
            _evaluate_round(config, state, r, models, evaluations[-1][1], log)
            evaluations.append((f"round {r}", out / record.evaluation))
            models = dict(record.models_after)
        state.status = "complete"
        _report(out, evaluations, state)
        state.write(out / "iterate.json")  # last: the loop is finished when it says so
    return state


def _train_agents(config: IterateConfig, state: LoopState, r: int, run: Path, log) -> None:
    """Mine each trained agent's rows from round r's run and train it on them; an agent without
    train rows keeps its model, and the record says why."""
    out, record = Path(config.out), state.rounds[r]
    for agent, how in config.trained.items():
        data, model = out / f"round-{r}" / "data" / agent, out / f"round-{r}" / "models" / agent
        rows, why = _mine(config, how, run, data, log)
        record.rows[agent] = rows
        if why:
            record.not_trained[agent] = why
            record.models_after[agent] = record.models_before[agent]
            log(f"   {agent}: not trained this round: {why}", flush=True)
        else:
            record.models_after[agent] = _train(config, how, data, record.models_before[agent], model, log)
        state.write(out / "iterate.json")


def _evaluate_round(config: IterateConfig, state: LoopState, r: int, before: dict[str, str], last: Path, log) -> None:
    """Evaluate round r's models, unless they are the models `last` evaluated (`before`)."""
    out, record = Path(config.out), state.rounds[r]
    if record.evaluation is None:
        model, partner = record.models_after[config.evaluate], _partner(config, record.models_after)
        if (model, partner) == (before[config.evaluate], _partner(config, before)):
            record.evaluation = last.relative_to(out).as_posix()  # the same models: the same evaluation
            log(f"   eval: the models did not change; {last} holds it", flush=True)
        else:
            _evaluate(config, model, partner, out / f"round-{r}" / "eval", log)
            record.evaluation = f"round-{r}/eval"
    record.finished_at = record.finished_at or now()
    state.write(out / "iterate.json")


def _begin(out: Path, config: IterateConfig) -> LoopState:
    """Start the loop, or continue the one `out` holds, refusing one with another config."""
    path = out / "iterate.json"
    if not path.exists():
        state = LoopState(config=config.identity())
    else:
        state = LoopState.read(path)
        if state.config != config.identity():
            keys = ", ".join(differing_keys(state.config, config.identity())) or "(config)"
            raise AgoraError(
                f"{path}: this folder holds a loop with another config (differing: {keys}); run it with "
                "the config it was started with (only rounds may grow), or choose a new out=DIR"
            )
        if len(state.rounds) > config.rounds:
            raise AgoraError(f"rounds={config.rounds}: {path} has run {len(state.rounds)} rounds already")
        state.status = "running"
    state.write(path)
    return state


def _simulate_config(config: IterateConfig, overrides: list[str]):
    from dialogue.running.config import SimulateConfig

    simulate = validate(composed("simulate", [*config.simulate, *overrides]), SimulateConfig)
    for name in config.trained:
        if name not in simulate.agents:
            raise AgoraError(f"trained.{name}: not an agent of the simulation ({', '.join(simulate.agents)})")
    return simulate


def _train_questions(config: IterateConfig) -> int:
    every = [f"out={config.out}", "dataset.split=train", "dataset.offset=0", "dataset.limit=null"]
    simulate = _simulate_config(config, every)
    return len(load_questions(simulate.dataset).questions)


def _window(r: int, size: int, available: int) -> tuple[int, int]:
    """Round r's questions: the r-th run of `size` train questions, starting over at the first once
    they are all used; every round takes the whole split when it is smaller than `size`."""
    if size >= available:
        print(
            f"warning: questions_per_round={size}, and the train split has {available}: every round takes them all",
            file=sys.stderr,
        )
        return 0, available
    return (r % (available // size)) * size, size


def _simulate(config: IterateConfig, record: RoundRecord, folder: Path, log) -> Path:
    from dialogue.running.simulate import simulate

    manifest = RunDir(folder).manifest()
    if manifest is not None and manifest.status == "complete":  # every tree grown, no turn failed
        return folder

    overrides = [
        f"out={folder}",
        f"seed={config.seed}",
        "dataset.split=train",
        f"dataset.offset={record.offset}",
        f"dataset.limit={record.questions}",
        f"progress={config.progress}",
        *(f"agents.{agent}.model={model}" for agent, model in record.models_before.items()),
    ]
    result = simulate(_simulate_config(config, overrides), folder)
    if result.summary.failed_turns:
        raise AgoraError(
            f"{folder}: {result.summary.failed_turns} turns failed (the run's manifest.json says why); "
            "run the same command again to retry them"
        )
    log(f"   simulate: {folder} ({result.summary.trees} trees)", flush=True)
    return folder


def _mine(config: IterateConfig, how: TrainedAgent, run: Path, data: Path, log) -> tuple[int, str | None]:
    """(the agent's train rows, why it cannot be trained on them, if it cannot)."""
    from dialogue.mining.export import MineConfig, mine

    if not (data / "card.json").exists():
        overrides = [f"run={run}", f"out={data}", f"miner={how.miner}", *config.mine, *how.mine]
        try:
            mine(validate(composed("mine", overrides), MineConfig))
        except AgoraError:
            if not (data / "card.json").exists():  # not an export without train rows: a real error
                raise
    card = Card.read(data / "card.json")
    rows = card.counts["split"].get("train", 0)
    log(f"   mine: {data} ({card.miner}: {rows} train rows)", flush=True)
    return rows, None if rows else f"miner={card.miner} gave no train rows (see {data / 'card.json'})"


def _train(config: IterateConfig, how: TrainedAgent, data: Path, start: str, model: Path, log) -> str:
    from trainers.config import TrainConfig, train_override
    from trainers.run import train

    if not (model / "train.json").exists():
        given = ["trainer.lora.enabled=true", *config.train, *how.train]  # adapters, unless the user says not
        overrides = [
            f"trainer={how.trainer}",
            *map(train_override, given),
            f"data.path={data}",
            f"model={start}",
            f"out={model}",
            f"seed={config.seed}",
            "resume=true",
        ]
        train(validate(composed("train", overrides), TrainConfig))
    log(f"   train: {model}", flush=True)
    return str(model)


def _partner(config: IterateConfig, models: dict[str, str]) -> str:
    return config.base if config.partner == "base" else models[config.partner]


def _evaluate(config: IterateConfig, model: str, partner: str, folder: Path, log) -> None:
    from dialogue.evaluation.config import EvalConfig
    from dialogue.evaluation.run import evaluate

    if (folder / "metrics.json").exists():
        return
    overrides = [
        f"suite=[{','.join(config.suites)}]",
        *config.eval,
        f"model={model}",
        f"partner={partner}",
        f"out={folder}",
        f"seed={config.seed}",
        f"progress={config.progress}",
    ]
    evaluate(validate(composed("eval", overrides), EvalConfig), overrides, log=lambda *a, **k: None)
    log(f"   eval: {folder}", flush=True)


def rounds_table(state: LoopState) -> str:
    """What each round simulated on, mined and trained: where a round lost an agent's training."""
    agents = list(state.rounds[0].models_before) if state.rounds else []
    lines = [
        "| round | questions | " + " | ".join(f"{a}: train rows" for a in agents) + " | not trained |",
        "|---|---|" + "---|" * len(agents) + "---|",
    ]
    for r, record in enumerate(state.rounds):
        missing = "; ".join(f"{a}: {why}" for a, why in record.not_trained.items()) or "-"
        rows = " | ".join(str(record.rows.get(a, "-")) for a in agents)
        lines.append(f"| {r} | {record.questions} (from {record.offset}) | {rows} | {missing} |")
    return "\n".join(lines)


def _report(out: Path, evaluations: list[tuple[str, Path]], state: LoopState) -> None:
    """report.md, report.html and report.png: every metric by round, each round paired by
    question against the base model, and what each round trained on."""
    from dialogue.evaluation.report import compare_markdown, load_metrics
    from dialogue.evaluation.report_page import compare_page

    labels = [label for label, _ in evaluations]
    plot = out / "report.png"
    table = compare_markdown([load_metrics(folder) for _, folder in evaluations], labels, plot)
    rounds = rounds_table(state)
    (out / "report.md").write_text(
        f"# Loop: {out}\n\n{table}\n\n![by round]({plot.name})\n\n## Rounds\n\n{rounds}\n", encoding="utf-8"
    )
    pages = [(label, str(folder)) for label, folder in evaluations]
    page = compare_page(table, pages, plot, title=f"Loop: {out}", more=rounds)
    (out / "report.html").write_text(page, encoding="utf-8")
