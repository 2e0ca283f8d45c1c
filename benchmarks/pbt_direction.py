"""Does persuasion-balanced training move SmolLM2 the way the PBT paper says? The whole chain, one command.

Stengel-Eskin, Hase & Bansal (2024) report that training on `resist` pairs lowers the rate at
which a model gives up a correct answer under misleading persuasion, training on `accept` pairs
raises the rate at which it takes a correct answer it was persuaded towards, and training on both
(PBT) does both in part. This runs the chain as a user would, with `agora` commands:

1. simulate pbt_tree trees on train-split questions, general knowledge and arithmetic;
2. mine them into pbt pairs (`agora mine` prints what the persuasion turns lost, and why);
3. train three adapters from the embedded model: resist pairs only, accept pairs only, both (PBT);
4. simulate and mine the test-split questions, for the balanced suite's held-out pairs;
5. evaluate the base model and the three adapters on the test split of each dataset
   (are_you_sure, misinformation, balanced), and compare each with the base, paired by question;
6. print, and write to OUT/direction.md, the metrics that carry the paper's claim, with paired
   95% intervals and Holm-adjusted p over each comparison table.

    python benchmarks/pbt_direction.py [--out runs/pbt-direction] [--train-gk 338] [--train-arith 0]

Two choices are the study's, made because SmolLM2-135M's answers are hard to read (in a 60-question
trial, 195 of 276 persuasion turns gave no pair because the persuader's answer could not be read):
every command reads a reply whose letter and choice text disagree by its letter
(`dataset.judge_conflict=letter`, about 40% of SmolLM2's unreadable replies), and mining takes a
persuasion turn with no readable answer as arguing for its speaker's last readable one
(`miner.persuader_answer=held`, what pbt_tree tells the persuader to do). Arithmetic is in the
evaluation (its test split brings the test questions over 100) but not, by default, in training:
SmolLM2 solves almost none of the problems, so its arithmetic trees give almost no pairs.

Every stage's output is checked before it runs, so the same command resumes a stopped study
(each `agora` command resumes or skips its own output). On 2 CPU cores the defaults are estimated
at about 2 hours (not yet timed end to end); it is a benchmark, not a test: run it in the background.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from dialogue.records import Card
from dialogue.running.rundir import RunDir

ROOT = Path(__file__).resolve().parents[1]
MODEL = "smollm2-135m"
ARITHMETIC = ["dataset=arithmetic", "dataset.count=600"]  # 62 of the 600 problems are in the test split
READING = ["dataset.judge_conflict=letter"]  # see the docstring: the same in every command
DATASETS = {"gk": READING, "arith": [*ARITHMETIC, *READING]}
MINING = ["miner.persuader_answer=held"]
ADAPTERS = {"resist": ["data.labels=[resist]"], "accept": ["data.labels=[accept]"], "pbt": []}
SUITES = "suite=[are_you_sure,misinformation,balanced]"
EVAL_TOKENS = "max_tokens=160"  # the agents' own limit in simulate; SmolLM2's arithmetic otherwise loops to 256
# (suite, metric, the direction the paper expects of resist / accept / pbt training; "" for none)
CLAIMS = [
    ("are_you_sure", "flip_correct_to_wrong", {"resist": "-", "pbt": "-"}),
    ("are_you_sure", "flip_wrong_to_correct", {"accept": "+", "pbt": "+"}),
    ("are_you_sure", "answer_changed", {"resist": "-", "accept": "+"}),
    ("misinformation", "MR@1", {"resist": "-", "pbt": "-"}),
    ("misinformation", "MR@3", {"resist": "-", "pbt": "-"}),
    ("balanced", "accuracy_misleading", {"resist": "+", "pbt": "+"}),
    ("balanced", "accuracy_correct_persuasion", {"accept": "+", "pbt": "+"}),
    ("balanced", "balanced_accuracy", {"pbt": "+"}),
]


def agora(*args: str, log: Path, allow: tuple[int, ...] = (0,)) -> None:
    """One `agora` command, its output appended to `log`; a failure stops the study, naming it."""
    started = time.monotonic()
    print(f"$ agora {' '.join(args)}", flush=True)
    with log.open("a") as out:
        out.write(f"\n$ agora {' '.join(args)}\n")
        out.flush()
        done = subprocess.run(
            [sys.executable, "-m", "agora", *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=os.environ
        )
    print(f"  {time.monotonic() - started:.0f} s", flush=True)
    if done.returncode not in allow:
        sys.exit(f"agora {args[0]} failed ({done.returncode}); see {log}")


def finished_run(path: Path) -> bool:
    manifest = RunDir(path).manifest()
    return manifest is not None and manifest.status == "complete"


def study(out: Path, train_gk: int, train_arith: int, test_limit: str, evaluated: list[str]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    log = out / "commands.log"
    limits = {"gk": train_gk, "arith": train_arith}
    # 1-2: train-split trees, mined together (one split rule, so no question is in two splits)
    for name, dataset in DATASETS.items():
        run = out / f"sim-{name}-train"
        if limits[name] and not finished_run(run):
            agora(
                "simulate",
                *dataset,
                "dataset.split=train",
                f"dataset.limit={limits[name]}",
                f"out={run}",
                "progress=false",
                log=log,
                allow=(0, 3),
            )
    train_runs = [f"run={out / f'sim-{name}-train'}" for name in DATASETS if limits[name]]
    if not (out / "data" / "card.json").is_file():
        agora("mine", *train_runs, *MINING, f"out={out / 'data'}", log=log)
    # 3: three adapters from the embedded model; one whose label has no train pair is reported, not trained
    card = Card.read(out / "data" / "card.json")
    train_labels = pq.read_table(out / "data" / "train.parquet", columns=["label"]).column("label").to_pylist()
    pairs_by_label = {label: train_labels.count(label) for label in ("accept", "resist")}
    print(f"train pairs by label {pairs_by_label}; persuasion turns {card.persuasions['train']}", flush=True)
    trained = {}
    for name, labels in ADAPTERS.items():
        if pairs_by_label.get(name, 1) == 0:
            print(f"no {name} pairs to train on: the {name} adapter is left out", flush=True)
            continue
        if not (out / "models" / name / "train.json").is_file():
            agora("train", "trainer=pbt", f"data={out / 'data'}", *labels, f"model={MODEL}",
                  f"out={out / 'models' / name}", log=log)  # fmt: skip
        trained[name] = str(out / "models" / name)
    # 4-5: held-out pairs per dataset, then every model on every dataset's test split
    models = {"base": MODEL, **trained}
    for name in evaluated:
        dataset = DATASETS[name]
        run, pairs = out / f"sim-{name}-test", out / f"data-test-{name}"
        if not finished_run(run):
            agora(
                "simulate",
                *dataset,
                "dataset.split=test",
                f"dataset.limit={test_limit}",
                f"out={run}",
                "progress=false",
                log=log,
                allow=(0, 3),
            )
        if not (pairs / "card.json").is_file():
            agora("mine", f"run={run}", *MINING, f"out={pairs}", log=log)
        suites = SUITES
        if Card.read(pairs / "card.json").rows == 0:
            print(f"{name}: the test split gave no pairs, so the balanced suite is left out", flush=True)
            suites = "suite=[are_you_sure,misinformation]"
        for label, model in models.items():
            evaluation = out / "evals" / f"{label}-{name}"
            if not (evaluation / "metrics.json").is_file():
                agora(
                    "eval",
                    suites,
                    *dataset,
                    f"dataset.limit={test_limit}",
                    EVAL_TOKENS,
                    f"model={model}",
                    f"data={pairs}",
                    f"out={evaluation}",
                    "progress=false",
                    log=log,
                )
        agora(
            "eval",
            "compare",
            *(str(out / "evals" / f"{label}-{name}") for label in models),
            f"out={out / f'comparison-{name}.md'}",
            log=log,
        )
    return write_direction(out, list(models), evaluated)


def write_direction(out: Path, labels: list[str], evaluated: list[str]) -> Path:
    """The metrics that carry the paper's claim: each model's value, its paired difference from
    the base model with the Holm-adjusted p of its comparison table, and whether it moved the
    way the paper says (an interval that excludes 0 in that direction)."""
    lines = [
        "| dataset | suite | metric | expected | base | " + " | ".join(f"{m} - base" for m in labels[1:]) + " |",
        "|" + "---|" * (5 + len(labels) - 1),
    ]
    for name in evaluated:
        table = _rows(out / f"comparison-{name}.md")
        for suite, metric, expected in CLAIMS:
            row = table.get((suite, metric))
            if row is None:
                continue
            base, differences = row[0], row[len(labels) :]
            marks = []
            for label, cell in zip(labels[1:], differences, strict=True):
                sign = expected.get(label, "")
                marks.append(f"{cell}{_verdict(cell, sign)}")
            wanted = ", ".join(f"{label} {sign}" for label, sign in expected.items())
            lines.append(f"| {name} | {suite} | {metric} | {wanted} | {base} | " + " | ".join(marks) + " |")
    path = out / "direction.md"
    path.write_text(
        "# PBT direction on SmolLM2-135M\n\n"
        + "\n".join(lines)
        + "\n\nexpected: the sign of the change the paper reports for that training (- lower, + higher). "
        "A verdict after a cell: 'moved' when the paired 95% interval excludes 0 in the expected direction, "
        "'against' when it excludes 0 the other way, 'n.s.' otherwise. Holm p is adjusted over all the "
        "differences of that dataset's comparison table.\n"
    )
    print(path.read_text())
    return path


def _rows(path: Path) -> dict[tuple[str, str], list[str]]:
    """(suite, metric) -> the cells of a comparison table after the two key columns."""
    rows = {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 3 and not set(line) <= set("|-") and cells[0] != "suite":
            rows[(cells[0], cells[1])] = cells[2:]
    return rows


def _verdict(cell: str, sign: str) -> str:
    if not sign or cell in ("-", "n/a"):
        return ""
    low, high = (float(x) for x in cell.split("[", 1)[1].split("]", 1)[0].split(","))
    if (sign == "-" and high < 0) or (sign == "+" and low > 0):
        return " moved"
    if (sign == "-" and low > 0) or (sign == "+" and high < 0):
        return " against"
    return " n.s."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "pbt-direction")
    parser.add_argument("--train-gk", type=int, default=338, help="train-split general-knowledge questions (all 338)")
    parser.add_argument("--train-arith", type=int, default=0, help="train-split arithmetic problems")
    parser.add_argument("--test-limit", default="null", help="test questions per dataset (null: all of them)")
    parser.add_argument(
        "--evaluate", nargs="+", choices=list(DATASETS), default=list(DATASETS), help="the test splits evaluated"
    )
    args = parser.parse_args()
    started = time.monotonic()
    study(args.out, args.train_gk, args.train_arith, args.test_limit, args.evaluate)
    print(f"study took {(time.monotonic() - started) / 60:.0f} min; its commands' output: {args.out / 'commands.log'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
