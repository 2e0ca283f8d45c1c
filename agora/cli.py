"""`agora SUBCOMMAND [hydra overrides...]`: one Hydra app per subcommand.

Each subcommand has a primary config of the same name in conf/. Errors the user can fix are
printed as one message, without a traceback, and exit with status 2.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from agents.errors import AgoraError
from agents.files import DISK_FULL
from trainers.config import train_override

USAGE = """usage: agora COMMAND [key=value ...]

commands:
  simulate  run a protocol over a dataset and write dialogue trees   agora simulate --help
  mine      turn run directories into a training dataset             agora mine run=DIR miner=pbt out=DIR
  replay    regenerate one agent's turns of a run                    agora replay run=DIR replay.agent=B
            and compare two runs' answers                            agora replay diff DIR_A DIR_B
  render    one tree of a run as text, an HTML page or Graphviz dot  agora render run=DIR tree=ID format=html
  view      a run (or several) as a site: every tree, filters, pages agora view run=DIR [run=DIR2] [serve=true]
  train     train a model on a mined dataset                         agora train trainer=pbt data=DIR model=M out=DIR
  eval      run evaluation suites against a model                    agora eval suite=all model=M data=DIR out=DIR
            and compare evaluations, paired by question              agora eval compare DIR_A DIR_B [out=FILE.md]
  tune-prompt  a system-message phrase searched for on one suite's  agora tune-prompt suite=are_you_sure
            metric (validation split), measured on the test split      tune.metric=accuracy_after model=M
  iterate   rounds of simulate, mine, train and eval, each round's   agora iterate rounds=2 questions_per_round=8
            models arguing in the next; a report by round
  serve     a model behind vLLM's OpenAI-compatible server           agora serve smollm2-135m [--port 8000 ...]
"""


INCOMPLETE = 3  # the exit status of a run that finished with failed turns (2: an error the user can fix)


def shown(path: str) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def simulate_command(cfg: DictConfig) -> None:
    from dialogue.running.config import validate
    from dialogue.running.simulate import check_local_models, simulate
    from dialogue.running.summary import format_summary

    config = validate(cfg)
    check_local_models(config)  # a model that is nowhere is one line, before the run is announced
    out = shown(HydraConfig.get().runtime.output_dir)
    print(f"out={out}", flush=True)
    result = simulate(config, out, warn_splits=True)
    print(format_summary(result.summary, result.stats))
    if result.skipped_rows:
        print(f"skipped dataset rows: {result.skipped_rows}")
    print(f"out={out}")
    if result.summary.failed_turns:
        sys.exit(INCOMPLETE)


def mine_command(cfg: DictConfig) -> None:
    from dialogue.mining.export import MineConfig, mine
    from dialogue.running.config import validate

    config = validate(cfg, MineConfig)
    card = mine(config)
    for problem in card.bad_lines:
        print(f"skipped {problem}", file=sys.stderr)
    counts = card.counts
    print(f"{card.miner}: {card.rows} rows  " + "  ".join(f"{k}={v}" for k, v in counts["split"].items()))
    if counts["label"]:
        print("labels: " + "  ".join(f"{k}={v}" for k, v in counts["label"].items()))
    if card.report is not None:
        print(f"{card.miner} report: " + "  ".join(f"{k}={v}" for k, v in card.report.items()))
    for split, found in (card.persuasions or {}).items():
        lost = "  ".join(f"{reason}={n}" for reason, n in found.lost.items() if n)
        print(
            f"{split}: {found.turns} persuasion turns, {found.with_pairs} gave pairs"
            + (f"; lost: {lost}" if lost else "")
        )
    if any(card.duplicates.values()):
        print(
            "identical rows written once: " + "  ".join(f"{k or 'rows'}={v}" for k, v in card.duplicates.items() if v)
        )
    from dialogue.running.summary import per_agent

    print(
        f"answers the judge could not read in the source runs: {per_agent(card.judge['unreadable'])}"
        f"   letter/text conflicts: {per_agent(card.judge['conflicts'])}"
    )
    for split, found in (card.balance or {}).items():
        if not found.balanced:
            print(
                f"warning: miner.balance: the {split} split cannot be balanced (accept={found.accept}, "
                f"resist={found.resist}); it is kept unbalanced (card.json: balance)",
                file=sys.stderr,
            )
    print(f"out={config.out}")


def replay_command(cfg: DictConfig) -> None:
    from dialogue.running.config import validate
    from dialogue.running.replay import ReplayConfig, replay_command_config
    from dialogue.running.summary import format_summary

    config = validate(cfg, ReplayConfig)
    print(f"out={config.out}", flush=True)
    result = replay_command_config(config)
    print(format_summary(result.summary, result.stats))
    print(f"out={config.out}")
    if result.summary.failed_turns:
        sys.exit(INCOMPLETE)


def render_command(cfg: DictConfig) -> None:
    from dialogue.evaluation.render import RenderConfig, render
    from dialogue.running.config import validate

    shown, _ = render(validate(cfg, RenderConfig))
    print(shown)


def view_command(cfg: DictConfig) -> None:
    from dialogue.evaluation.view import ViewConfig, serve, view
    from dialogue.running.config import validate

    config = validate(cfg, ViewConfig)
    out = view(config)
    print(f"view: {out / 'index.html'}")
    if config.serve:
        serve(out, config.port)


def train_command(cfg: DictConfig) -> None:
    from accelerate import PartialState

    from dialogue.running.config import validate
    from trainers.config import TrainConfig
    from trainers.run import train

    config = validate(cfg, TrainConfig)
    try:
        summary = train(config)
    finally:
        # every process leaves the group before it exits: one that exits first while another's gloo
        # threads still talk to it can abort the other (SIGABRT) after a run that succeeded
        PartialState().destroy_process_group()
    if not PartialState().is_main_process:  # under `accelerate launch`: one report, not one per process
        return
    for stage, result in summary.stages.items():
        loss = result.get("train_loss")
        print(f"{stage}: {result['global_step']} steps" + (f", mean loss {loss:.4f}" if loss is not None else ""))
    print(f"saved {summary.saved} ({'base ' + summary.model if summary.saved == 'adapter' else 'full model'})")
    print(f"out={config.out}")


def eval_command(cfg: DictConfig) -> None:
    from dialogue.evaluation.config import EvalConfig
    from dialogue.evaluation.run import check_models, evaluate
    from dialogue.running.config import validate

    hydra_config = HydraConfig.get()
    out = shown(hydra_config.runtime.output_dir)  # in a multirun, the job's own folder
    config = validate(cfg, EvalConfig).model_copy(update={"out": out})
    check_models(config)
    print(f"out={out}", flush=True)
    metrics = evaluate(config, list(hydra_config.overrides.task))
    for suite, why in metrics.not_run.items():
        print(f"{suite}: not run: {why}")
    print(f"report: {out}/report.md  page: {out}/report.html")
    print(f"out={out}")


class WriteComparison(Callback):
    """After `agora eval -m ...`: one table comparing every job of the sweep."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from dialogue.evaluation.run import write_comparison

        path = write_comparison(Path(config.hydra.sweep.dir))
        if path:
            print(f"comparison: {path}")


def tune_prompt_command(cfg: DictConfig) -> None:
    from dialogue.evaluation.tune import TuneConfig, tune_prompt
    from dialogue.running.config import validate

    config = validate(cfg, TuneConfig).model_copy(update={"out": shown(HydraConfig.get().runtime.output_dir)})
    print(f"out={config.out}", flush=True)
    result = tune_prompt(config)
    best = result["finalists"][0]
    print(f"best phrase: {best['phrase']}")
    print(f"report: {config.out}/report.md")
    print(f"out={config.out}")


def iterate_command(cfg: DictConfig) -> None:
    from dialogue.running.config import validate
    from trainers.iterate import IterateConfig, iterate

    config = validate(cfg, IterateConfig)
    print(f"out={config.out}", flush=True)
    state = iterate(config)
    print(f"{len(state.rounds)} rounds done")
    print(f"report: {config.out}/report.md  page: {config.out}/report.html")
    print(f"out={config.out}")


STAGES = ("simulate", "mine", "train", "eval")


def stage_overrides(overrides: list[str]) -> list[str]:
    """`simulate.protocol.depth=4` -> `simulate=['protocol.depth=4']`, and likewise `mine.`, `train.`,
    `eval.` and one agent's `trained.B.mine.` and `trained.B.train.`: each stage's options of
    `agora iterate` are that stage's own overrides, kept as a list."""
    kept, lists = [], {}
    for override in overrides:
        parts = override.split("=", 1)[0].split(".")
        if parts[0] in STAGES and len(parts) > 1:
            lists.setdefault(parts[0], []).append(override.split(".", 1)[1])
        elif parts[0] == "trained" and len(parts) > 3 and parts[2] in ("mine", "train"):
            lists.setdefault(".".join(parts[:3]), []).append(override.split(".", 3)[3])
        else:
            kept.append(override)
    # an agent's lists are not in conf/iterate.yaml: `++` adds or sets them
    return kept + [
        f"{'++' if key.startswith('trained.') else ''}{key}={hydra_list(given)}" for key, given in lists.items()
    ]


COMMANDS = {
    "simulate": simulate_command,
    "mine": mine_command,
    "replay": replay_command,
    "render": render_command,
    "view": view_command,
    "train": train_command,
    "eval": eval_command,
    "tune-prompt": tune_prompt_command,
    "iterate": iterate_command,
}


def replay_diff(args: list[str]) -> None:
    from dialogue.running.replay import diff

    if len(args) != 2:
        print("usage: agora replay diff RUN_A RUN_B", file=sys.stderr)
        sys.exit(2)
    try:
        print(diff(*args))
    except AgoraError as e:
        print(f"agora replay diff: error: {e}", file=sys.stderr)
        sys.exit(2)


def eval_compare(args: list[str]) -> None:
    from dialogue.evaluation.report import compare

    out = [a.split("=", 1)[1] for a in args if a.startswith("out=")]
    folders = [a for a in args if not a.startswith("out=")]
    if len(folders) < 2:
        print(
            "usage: agora eval compare DIR_A DIR_B [...] [out=FILE.md]  (default: "
            "evals/compare-TIME/comparison.md, with comparison.png and comparison.html beside it)",
            file=sys.stderr,
        )
        sys.exit(2)
    target = Path(out[0] if out else f"evals/compare-{time.strftime('%Y%m%d-%H%M%S')}/comparison.md")
    plot = target.with_suffix(".png")
    try:
        table, labels = compare(folders, plot=plot)
    except AgoraError as e:
        print(f"agora eval compare: error: {e}", file=sys.stderr)
        sys.exit(2)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(table + f"\n![comparison]({plot.name})\n", encoding="utf-8")
    from dialogue.evaluation.report_page import compare_page

    page = target.with_suffix(".html")
    page.write_text(compare_page(table, list(zip(labels, folders, strict=True)), plot), encoding="utf-8")
    print(table)
    print(f"plot: {shown(str(plot))}")
    print(f"page: {shown(str(page))}")
    print(f"out={shown(str(target))}")


def serve(args: list[str]) -> None:
    """`agora serve MODEL [vLLM options]`: print how to reach it, then become the server."""
    from agents.serve import option, server_argv

    if not args or args[0].startswith("-"):
        print("usage: agora serve MODEL [vLLM server options, e.g. --port 8000 --max-model-len 4096]", file=sys.stderr)
        sys.exit(2)
    try:
        argv = server_argv(args[0], args[1:])
    except AgoraError as e:
        print(f"agora serve: error: {e}", file=sys.stderr)
        sys.exit(2)
    import torch

    url = f"http://{option(argv, '--host')}:{option(argv, '--port')}/v1"
    name = option(argv, "--served-model-name")
    # the CPU build's sampler fails on a per-request seed, and takes the server down with it
    seed = "" if torch.cuda.is_available() else " backend.send_seed=false"
    print(
        f"serving {name} at {url} (ready once vLLM says 'Application startup complete'); in another shell:\n"
        f"  agora simulate backend=openai backend.base_url={url} backend.api_key_env=null{seed} "
        f"agents.A.model={name} agents.B.model={name}",
        flush=True,
    )
    os.execv(argv[0], argv)


def replay_override(override: str) -> str:
    """`agents.B.model=M` adds to a config that has no agents (they come from the source run)."""
    return "+" + override if override.startswith("agents.") else override


def merge_repeated(overrides: list[str], key: str) -> list[str]:
    """`run=A run=B` -> `run=['A','B']`: Hydra takes a key once, users name several runs."""
    values = [o.split("=", 1)[1] for o in overrides if o.startswith(f"{key}=")]
    if len(values) < 2:
        return overrides
    return [o for o in overrides if not o.startswith(f"{key}=")] + [f"{key}={hydra_list(values)}"]


def hydra_list(values: list[str]) -> str:
    """A Hydra list override's value, each string quoted."""
    return "[" + ",".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values) + "]"


def saved_hydra(out: Path) -> dict[str, bytes]:
    folder = out / ".hydra"
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}


def put_back_hydra(out: Path, saved: dict[str, bytes]) -> None:
    """The run's .hydra/ as it was before a refused command, when it had one."""
    if not saved:
        return
    folder = out / ".hydra"
    for path in folder.iterdir():
        if path.name not in saved:
            path.unlink()
    for name, data in saved.items():
        (folder / name).write_bytes(data)


def drop_if_empty(out: Path, command: str, existed: bool) -> None:
    """After a user error, take away what Hydra wrote before the command ran (its saved config
    and an empty log), so that a mistyped name leaves no folder that looks like a run."""
    if out.resolve() == Path.cwd().resolve() or not out.is_dir():
        return
    hydra_files = {".hydra", f"{command}.log"}
    if any(p.name not in hydra_files for p in out.iterdir()):
        return  # the command wrote something: keep it all
    log = out / f"{command}.log"
    if log.exists() and log.stat().st_size:
        return
    shutil.rmtree(out / ".hydra", ignore_errors=True)
    log.unlink(missing_ok=True)
    if not existed:
        out.rmdir()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command, overrides = argv[0], merge_repeated(merge_repeated(argv[1:], "run"), "data")
    if command == "eval" and overrides[:1] == ["compare"]:
        return eval_compare(argv[2:])
    if command == "serve":
        return serve(argv[1:])
    if command == "replay":
        if overrides[:1] == ["diff"]:
            return replay_diff(overrides[1:])
        overrides = [replay_override(o) for o in overrides]
    if command == "train":
        overrides = [train_override(o) for o in overrides]
    if command == "iterate":
        overrides = stage_overrides(overrides)
    if command not in COMMANDS:
        print(f"agora: unknown command '{command}'\n\n{USAGE}", file=sys.stderr)
        sys.exit(2)
    for override in overrides:  # before Hydra, which makes `out` its own output directory
        if override.startswith("out=") and command in ("simulate", "eval", "tune-prompt", "iterate"):
            from dialogue.running.rundir import check_writable

            try:
                check_writable(Path(override[len("out=") :]))
            except AgoraError as e:
                print(f"agora {command}: error: {e}", file=sys.stderr)
                sys.exit(2)

    given = [o[len("out=") :] for o in overrides if o.startswith("out=")]
    existed = bool(given) and Path(given[-1]).exists()
    # Hydra writes its .hydra/ before the command runs; a command that is then refused (the run
    # is locked, or holds another config) puts back what the run had
    saved = saved_hydra(Path(given[-1])) if existed else {}

    def task(cfg: DictConfig) -> None:
        if command in (
            "mine",
            "train",
            "eval",
            "tune-prompt",
            "iterate",
        ):  # one bar per step of Agora's own, not one per `datasets` map
            import datasets

            datasets.disable_progress_bars()
        try:
            COMMANDS[command](cfg)
        except AgoraError as e:
            put_back_hydra(Path(HydraConfig.get().runtime.output_dir), saved)
            drop_if_empty(Path(HydraConfig.get().runtime.output_dir), command, existed)
            print(f"agora {command}: error: {e}", file=sys.stderr)
            sys.exit(2)
        except OSError as e:
            if e.errno not in DISK_FULL:
                raise
            where = e.filename or (given[-1] if given else HydraConfig.get().runtime.output_dir)
            print(
                f"agora {command}: error: {where}: {os.strerror(e.errno)}; what was written before is kept. "
                "Free some space and run the same command again",
                file=sys.stderr,
            )
            sys.exit(2)
        except KeyboardInterrupt:  # what was written stays; the same command goes on from it
            print(f"agora {command}: interrupted: rerun the same command to continue", file=sys.stderr)
            sys.exit(130)

    # Hydra's parser takes its flags before the overrides only; `agora eval suite=X -m persona=a,b` is
    # how people write a sweep
    multirun = [o for o in overrides if o in ("-m", "--multirun")]
    sys.argv = [f"agora {command}", *multirun, *(o for o in overrides if o not in multirun)]
    hydra.main(config_path="pkg://conf", config_name=command, version_base="1.3")(task)()
