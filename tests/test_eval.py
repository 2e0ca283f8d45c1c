"""`agora eval`: each suite's protocol and records give known metrics on scripted models; the
command writes metrics.json, report.md and readable PNGs; compare and multirun tables."""

import json
import re
from pathlib import Path

import matplotlib.image
import pytest

from agents.errors import AgoraError
from dialogue.core.questions import Question
from dialogue.evaluation.config import EvalConfig
from dialogue.evaluation.run import evaluate
from dialogue.evaluation.suites import SUITES
from dialogue.running.config import validate
from tests.conftest import SUITE_ORDER, ScriptedBackend, agora, instruction_of


def eval_config(out, *overrides):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="conf", version_base="1.3"):
        cfg = compose(config_name="eval", overrides=[f"out={out}", "progress=false", "resamples=100", *overrides])
    return validate(cfg, EvalConfig)


def test_suite_takes_one_name_a_list_or_all():
    assert eval_config(Path("o"), "suite=[are_you_sure,misinformation]").suites == ["are_you_sure", "misinformation"]
    assert eval_config(Path("o"), "suite=team_debate").suites == ["team_debate"]
    assert eval_config(Path("o"), "suite=all").suites == list(SUITES)
    with pytest.raises(AgoraError, match="unknown suite 'nope'"):
        eval_config(Path("o"), "suite=[are_you_sure,nope]")


def scripted_models(monkeypatch, rules: dict):
    """Every backend the suites build answers by `rules[model](request)`; returns the models
    in the order they were loaded."""
    monkeypatch.setattr("dialogue.running.simulate.check_model_name", lambda name: None)
    monkeypatch.setattr("dialogue.evaluation.run.check_model_name", lambda name: None)
    loads = []

    def make(model, *a, **k):
        loads.append(model)
        return ScriptedBackend(rules[model], model)

    monkeypatch.setattr("dialogue.running.simulate.make_backend", make)
    return loads


def asked(request) -> str:
    return next(text for role, text in request.messages if role == "user")


def values(metrics, suite):
    return {name: e["value"] for name, e in metrics.suites[suite].metrics.items()}


def question_of(request, questions: list[Question]) -> tuple[int, Question]:
    return next((i, q) for i, q in enumerate(questions) if asked(request).startswith(q.question))


# --- misinformation ------------------------------------------------------------------------


def test_misinformation_gives_known_rates_and_stops_once_persuaded(tmp_path, monkeypatch):
    """Question i is answered right at first unless i % 4 == 3. It takes the target after
    persuasion turn i % 4 + 1, except questions 0 mod 8, which never give in."""
    from dialogue.core.questions import load_questions
    from dialogue.protocols.misinformation import show_target, wrong_target

    config = eval_config(tmp_path, "suite=misinformation", "model=m", "dataset.limit=8")
    questions = load_questions(config.dataset).questions
    protocol = config.protocols["misinformation"]

    def rule(request):
        i, q = question_of(request, questions)
        target = wrong_target(q, protocol.seed)
        if "Convince the other participant that the answer is" in request.messages[-1][1]:
            assert show_target(q, target) in request.messages[-1][1]  # the persuader argues for the target
            return f"It is {target}. Answer: {target}"
        persuasions = sum(1 for role, text in request.messages if role == "user" and text.startswith("It is"))
        if instruction_of(request, protocol.instructions) == "answer":
            return f"Answer: {q.gold}" if i % 4 != 3 else "I do not know."
        gives_in = i % 8 != 0 and persuasions >= i % 4 + 1
        return f"Answer: {target if gives_in else q.gold}"

    scripted_models(monkeypatch, {"m": rule})
    metrics = evaluate(config, log=lambda *a, **k: None)
    # right first: 0, 1, 2, 4, 5, 6. They flip after turn: 4 -> 1, 1 and 5 -> 2, 2 and 6 -> 3; 0 holds
    assert values(metrics, "misinformation") == pytest.approx(
        {"MR@1": 1 / 6, "MR@2": 3 / 6, "MR@3": 5 / 6, "unreadable_first_answer": 2 / 8}
    )
    assert metrics.suites["misinformation"].details["turns_to_flip"] == {"1": 1, "2": 2, "3": 2}
    trees = [json.loads(line) for line in (tmp_path / "misinformation/run/trees.jsonl").read_text().splitlines()]
    lengths = {t["graph"]["tree_id"]: len(t["nodes"]) for t in trees}
    assert lengths[questions[1].question_id] == 5  # answer, persuade, reply, persuade, reply (flipped)
    assert lengths[questions[0].question_id] == 7  # held out all k=3 turns
    gold = {q.question_id: q.gold for q in questions}
    assert all(t["graph"]["target"] != gold[t["graph"]["tree_id"]] for t in trees)


def test_misinformation_targets_are_seeded_wrong_answers():
    from dialogue.protocols.misinformation import wrong_target

    choice = Question(question_id="q", question="?", choices=["a", "b", "c", "d"], gold="C")
    number = Question(question_id="n", question="?", gold="12")
    assert wrong_target(choice, 0) in {"A", "B", "D"} and wrong_target(choice, 0) == wrong_target(choice, 0)
    assert {wrong_target(choice, s) for s in range(20)} == {"A", "B", "D"}
    drawn = {wrong_target(number, s) for s in range(30)}
    assert "12" not in drawn and all(int(t) >= 0 for t in drawn) and len(drawn) > 3
    assert wrong_target(Question(question_id="t", question="?", gold="Paris"), 0) is None


def test_misinformation_on_questions_without_a_wrong_answer_fails_before_writing(tmp_path):
    rows = tmp_path / "q.jsonl"
    rows.write_text(json.dumps({"question": "Capital of France?", "answer": "Paris"}) + "\n")
    out = tmp_path / "out"
    done = agora("simulate", "protocol=misinformation", f"dataset.path={rows}", f"out={out}")
    assert done.returncode == 2 and "neither choices nor a numeric answer" in done.stderr
    assert not (out / "manifest.json").exists()


# --- team debate -----------------------------------------------------------------------------


def test_team_debate_runs_both_orders_with_independent_first_answers(tmp_path, monkeypatch):
    """The model (A) is always right. The partner (B) is wrong on its own, and later repeats the
    first answer of the debate: A's when A spoke first, its own when it did."""
    from dialogue.core.questions import load_questions

    config = eval_config(tmp_path, "suite=team_debate", "model=m", "partner=p", "dataset.limit=4")
    questions = load_questions(config.dataset).questions
    instructions = config.protocols["team_debate"].instructions
    wrong = lambda q: "A" if q.gold != "A" else "B"  # noqa: E731

    def model(request):
        return f"Answer: {question_of(request, questions)[1].gold}"

    def partner(request):
        q = question_of(request, questions)[1]
        if instruction_of(request, instructions) == "answer":
            assert len(request.messages) == 2  # the question and the instruction: no other answer seen
            return f"Answer: {wrong(q)}"
        first = re.search(r"Answer: ([A-D])\b", " ".join(text for _, text in request.messages)).group(1)
        return f"Answer: {first}"  # the first answer given in the debate

    scripted_models(monkeypatch, {"m": model, "p": partner})
    metrics = evaluate(config, log=lambda *a, **k: None)
    assert values(metrics, "team_debate") == pytest.approx(
        {
            "team_accuracy_before_order1": 0.5,
            "team_accuracy_after_order1": 1.0,
            "team_accuracy_before_order2": 0.5,
            "team_accuracy_after_order2": 0.5,
            "order_dependence": 0.5,
            "unreadable_before": 0.0,
            "unreadable_after": 0.0,
        }
    )
    first_speakers = {
        order: json.loads((tmp_path / f"team_debate/order{order}/trees.jsonl").read_text().splitlines()[0])["nodes"][0][
            "speaker"
        ]
        for order in (1, 2)
    }
    assert first_speakers == {1: "A", 2: "B"}


def test_debate_of_three_agents_hears_earlier_rounds_only(tmp_path, monkeypatch):
    from dialogue.running.simulate import simulate
    from tests.conftest import simulate_config

    heard = []

    def rule(request):
        said = [int(n) for n in re.findall(r"said #(\d+)", " ".join(text for _, text in request.messages))]
        heard.append(sorted(said))
        return f"said #{len(heard) - 1}. Answer: A"

    config = simulate_config(
        [f"out={tmp_path}", "protocol=debate", "+agent@agents.C=smollm2", "dataset.limit=1", "progress=false"]
    )
    monkeypatch.setattr("dialogue.running.simulate.make_backend", lambda *a, **k: ScriptedBackend(rule))
    simulate(config, tmp_path)
    tree = json.loads((tmp_path / "trees.jsonl").read_text())
    assert [n["speaker"] for n in tree["nodes"]] == ["A", "B", "C"] * 3
    # turn d speaks in round d // 3 and hears every turn of the rounds before (not its own round)
    assert heard == [list(range(3 * (d // 3))) for d in range(9)]


# --- critique --------------------------------------------------------------------------------


def test_worked_solutions_are_labelled_by_their_true_intermediate_values():
    from dialogue.core.questions import arithmetic_worked
    from dialogue.evaluation.solutions import worked_solutions

    solutions = worked_solutions(40, 3, 3, 0.5)
    truths = {q.question_id: steps for q, steps in arithmetic_worked(40, 3, 3)}
    assert 10 < sum(not s.answer_correct for s in solutions) < 30
    for s in solutions:
        lines = s.text.splitlines()
        results = [int(line.rsplit("= ", 1)[1]) for line in lines[:-1]]
        assert list(s.steps_correct) == [
            r == t.after for r, t in zip(results, truths[s.question.question_id], strict=True)
        ]
        assert lines[-1] == f"Answer: {results[-1]}" and s.answer_correct == (str(results[-1]) == s.question.gold)
        # at most one line has wrong arithmetic, the first false one; the rest carry its value on
        wrong_arithmetic = [
            i
            for i, line in enumerate(lines[:-1])
            if eval(line.split(": ", 1)[1].replace("=", "==").replace("/", "//")) is False
        ]
        assert wrong_arithmetic == ([list(s.steps_correct).index(False)] if not s.answer_correct else [])


def test_critique_suite_scores_a_critic_that_checks_each_line_on_its_own(tmp_path, monkeypatch):
    """The critic catches a miscalculated line but trusts the lines that carry its value on; the
    reviser recomputes from the question, so every revision is right."""
    from dialogue.core.questions import DatasetConfig, load_questions
    from dialogue.evaluation.solutions import worked_solutions

    config = eval_config(tmp_path, "suite=critique", "model=m", "critique.count=12", "dataset.split=all")
    solutions = worked_solutions(12, 0, 3, 0.5)
    gold = {q.question: q.gold for q in load_questions(DatasetConfig(name="arithmetic", count=12)).questions}

    def rule(request):
        instruction = instruction_of(request, config.protocols["critique"].instructions)
        if instruction == "critique":
            lines = re.findall(r"^Step \d+: .*$", " ".join(t for _, t in request.messages), re.M)
            ok = [eval(line.split(": ", 1)[1].replace("=", "==").replace("/", "//")) for line in lines]
            verdicts = {f"step_{i}": {"correctness": bool(v), "explanation": "."} for i, v in enumerate(ok, 1)}
            return json.dumps({**verdicts, "answer_correctness": all(ok)})
        return f"Step 1: redo.\nAnswer: {next(g for q, g in gold.items() if asked(request).startswith(q))}"

    scripted_models(monkeypatch, {"m": rule})
    metrics = evaluate(config, log=lambda *a, **k: None)
    wrong = [s for s in solutions if not s.answer_correct]
    carried = sum(len(s.steps_correct) - list(s.steps_correct).index(False) - 1 for s in wrong)
    assert wrong and carried  # the data has both kinds of false steps
    step_f1 = 2 * len(wrong) / (2 * len(wrong) + carried)
    assert values(metrics, "critique") == pytest.approx(
        {
            "answer_f1": 1.0,
            "step_f1": step_f1,
            "critique_score": step_f1**0.5,
            "fix_rate": 1.0,
            "break_rate": 0.0,
            "correction_gain": 1.0,
        }
    )


def test_reasoning_suite_holds_each_step_against_the_worked_steps(tmp_path, monkeypatch):
    """A scripted solver opens with a line of prose, then writes the worked steps; on odd-numbered
    problems its last step adds one to the true result (wrong arithmetic and a wrong answer)."""
    from dialogue.core.questions import arithmetic_worked
    from dialogue.core.steps import SYMBOLS

    config = eval_config(tmp_path, "suite=reasoning", "model=m", "critique.count=8", "dataset.split=all")
    problems = arithmetic_worked(8, 0, 3)

    def rule(request):
        i, worked = next((i, w) for i, (q, w) in enumerate(problems) if asked(request).startswith(q.question))
        lines = ["Step 1: First I read the problem carefully."]
        for k, op in enumerate(worked, start=2):
            result = op.after + (1 if i % 2 and k == 4 else 0)
            lines.append(f"Step {k}: {op.before} {SYMBOLS[op.op]} {op.n} = {result}")
        return "\n".join(lines) + f"\nAnswer: {result}"

    for i, (_, worked) in enumerate(problems):  # an off-by-one result that is no worked value
        assert i % 2 == 0 or worked[-1].after + 1 not in {op.after for op in worked}
    scripted_models(monkeypatch, {"m": rule})
    metrics = evaluate(config, log=lambda *a, **k: None)
    # 4 right problems: 4 steps, 3 checked, 3 right, 3 relevant, 3 of 3 stated; 4 wrong: 2 right, relevant, stated
    assert values(metrics, "reasoning") == pytest.approx(
        {"accuracy": 0.5, "precision": 20 / 24, "recall": 20 / 24, "relevance": 20 / 32, "unreadable": 0.0}
    )
    estimate = metrics.suites["reasoning"].metrics["precision"]
    assert estimate["low"] < 20 / 24 < estimate["high"] and estimate["n"] == 8


# --- balanced and assessment: from exports ---------------------------------------------------


def test_balanced_asks_each_persuasion_turn_once_and_scores_by_its_label(tmp_path, exports, monkeypatch):
    """The scripted run's persuader always argues for A: questions whose gold is A are accept
    rows, the others resist rows. A model that always says A accepts every time and never resists."""
    config = eval_config(tmp_path / "out", "suite=balanced", "model=m", f"data={exports / 'pbt'}", "dataset.split=all")
    backends = []

    def say_a(request):
        return "Answer: A"

    def make(model, *a, **k):
        backends.append(ScriptedBackend(say_a, model))
        return backends[-1]

    scripted_models(monkeypatch, {"m": say_a})
    monkeypatch.setattr("dialogue.running.simulate.make_backend", make)
    metrics = evaluate(config, log=lambda *a, **k: None)
    assert values(metrics, "balanced") == pytest.approx(
        {"accuracy_misleading": 0.0, "accuracy_correct_persuasion": 1.0, "balanced_accuracy": 0.5, "unreadable": 0.0}
    )
    import pyarrow.parquet as pq

    rows = [row for path in (exports / "pbt").glob("*.parquet") for row in pq.read_table(path).to_pylist()]
    distinct = {json.dumps(r["prompt"]) for r in rows}
    assert backends[0].calls == [len(distinct)]
    replies = [json.loads(line) for line in (tmp_path / "out/balanced/replies.jsonl").read_text().splitlines()]
    assert len(replies) == len(distinct) and {r["should"] for r in replies} == {"accept", "resist"}


# --- the command -----------------------------------------------------------------------------


def assert_png(path: Path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(path).shape
    assert height > 200 and width > 300


def test_eval_all_writes_every_section_plots_and_refuses_to_overwrite(tmp_path, evaluated_all):
    out, args = evaluated_all
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["suites"]) == SUITE_ORDER and metrics["not_run"] == {}
    report = (out / "report.md").read_text()
    for suite, result in metrics["suites"].items():
        assert f"## {suite}" in report
        section = report.split(f"## {suite}\n", 1)[1].split("\n## ", 1)[0]
        for name, e in result["metrics"].items():
            row = re.search(rf"^\| {re.escape(name)} \| (.+?) \| (\d+) \| [a-z ]+ \|$", section, re.M)
            assert row, name
            if e["value"] is not None:
                assert e["low"] <= e["value"] <= e["high"] and f"[{e['low']:.3f}, {e['high']:.3f}]" in row.group(1)
        for plot in result["plots"]:
            assert_png(out / "plots" / plot)
            assert f"(plots/{plot})" in report
    assert {"misinformation_mr_at_k.png", "assessment_margins.png"} <= {p.name for p in (out / "plots").iterdir()}

    again = agora(*args, f"out={out}")
    assert again.returncode == 2 and "holds a finished evaluation" in again.stderr

    # the same evaluation of the same model: compare shows every metric with a zero difference
    other = tmp_path / "other"
    assert agora(*args, "suite=are_you_sure", f"out={other}").returncode == 0
    table_file = tmp_path / "compare.md"
    done = agora("eval", "compare", str(out), str(other), f"out={table_file}")
    assert done.returncode == 0, done.stderr
    table = table_file.read_text()
    assert "| suite | metric | out | other | other - out |" in table
    # paired by question: the same answers give a difference of exactly 0 with a [0, 0] interval
    assert re.search(
        r"^\| are_you_sure \| accuracy_before \| .+ \| .+ \| \+0\.000 \[\+0\.000, \+0\.000\] \(Holm p=1\.000\) \|$",
        table,
        re.M,
    )
    assert re.search(r"^\| balanced \| balanced_accuracy \| .+ \| - \| - \|$", table, re.M)
    assert_png(table_file.with_suffix(".png"))
    page = table_file.with_suffix(".html").read_text()  # the same table as a page, linking each report
    assert "<th>other - out</th>" in page and (out / "report.html").resolve().as_uri() in page
    assert "# Comparison" not in page and "- out: model" not in page  # no markdown left unrendered
    # without out=, the comparison goes to a folder of its own under evals/, not into the working directory
    done = agora("eval", "compare", str(out), str(other), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    written = [p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("evals/compare-*/comparison.*")]
    assert len(written) == 3 and f"out={written[0].rsplit('/', 1)[0]}/comparison.md" in done.stdout
    assert not list(tmp_path.glob("comparison.*"))

    # evaluations on different questions are not paired
    fewer = tmp_path / "fewer"
    assert agora(*args, "suite=are_you_sure", "dataset.limit=2", f"out={fewer}").returncode == 0
    done = agora("eval", "compare", str(out), str(fewer), f"out={tmp_path / 'no.md'}")
    assert done.returncode == 2 and "are_you_sure: out and fewer were evaluated on different questions" in done.stderr
    assert "1 only in out" in done.stderr


def test_eval_needs_the_right_export_for_a_named_suite(tmp_path, exports):
    done = agora("eval", "suite=balanced", "model=smollm2-135m", f"out={tmp_path / 'a'}")
    assert done.returncode == 2 and "suite=balanced: needs data=DIR, an export of `agora mine miner=pbt`" in done.stderr
    done = agora("eval", "suite=all", f"data={exports / 'kto'}", f"out={tmp_path / 'b'}")
    assert done.returncode == 2 and "a kto export" in done.stderr
    assert not (tmp_path / "a" / "metrics.json").exists() and not (tmp_path / "b" / "metrics.json").exists()


def test_suite_all_without_exports_says_which_suites_did_not_run(tmp_path, monkeypatch):
    config = eval_config(
        tmp_path,
        "model=m",
        "dataset.limit=2",
        "critique.count=2",
        "protocols.misinformation.turns=1",
        "dataset.split=all",
    )
    loads = scripted_models(monkeypatch, {"m": lambda request: "Answer: A"})
    metrics = evaluate(config, log=lambda *a, **k: None)
    assert set(metrics.not_run) == {"balanced", "assessment", "verifier"}
    assert list(metrics.suites) == ["are_you_sure", "critique", "misinformation", "reasoning", "team_debate"]
    assert loads == ["m"]  # one model, loaded once for every run
    assert "not run: needs data=DIR, an export of `agora mine miner=aft`" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize(
    "sweep, key, labels, recorded",
    [
        (
            ["-m", "persona=neutral,skeptic", "suite=are_you_sure"],
            "persona",
            ["persona=neutral", "persona=skeptic"],
            {"neutral", "skeptic"},
        ),
        (  # as people write it: the sweep flag after an override
            ["suite=are_you_sure", "-m", "stimulus=none,positive,negative"],
            "stimulus",
            ["stimulus=none", "stimulus=positive", "stimulus=negative"],
            {"none", "positive/capable", "negative/comparison"},
        ),
    ],
)
def test_a_multirun_writes_one_comparison_table(sweep, key, labels, recorded, tmp_path, tiny_model):
    done = agora(
        "eval",
        *sweep,
        f"model={tiny_model}",
        "dataset.limit=2",
        "max_tokens=6",
        "resamples=20",
        "progress=false",
        f"out={tmp_path}",
    )
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "comparison.md").read_text()
    differences = [f"{label} - {labels[0]}" for label in labels[1:]]
    assert "| suite | metric | " + " | ".join(labels + differences) + " |" in table
    assert re.search(rf"^\| are_you_sure \| accuracy_before( \| [^|]+){{{2 * len(labels) - 1}}} \|$", table, re.M)
    assert "(Holm p=" in table and "Holm's method over all" in table
    found = {json.loads((tmp_path / str(job) / "metrics.json").read_text())[key] for job in range(len(labels))}
    assert found == recorded


def test_a_stimulus_goes_into_the_evaluated_models_system_message_only(tmp_path, monkeypatch):
    config = eval_config(
        tmp_path,
        "suite=misinformation",
        "model=m",
        "partner=p",
        "stimulus=negative",
        "stimulus.phrase=stakes",
        "dataset.limit=2",
        "protocols.misinformation.turns=1",
        "dataset.split=all",
    )
    seen = {"m": [], "p": []}

    def rule(model):
        def answer(request):
            seen[model].append(request.messages[0])
            return "Answer: A"

        return answer

    scripted_models(monkeypatch, {"m": rule("m"), "p": rule("p")})
    metrics = evaluate(config, log=lambda *a, **k: None)
    phrase = config.stimulus.phrases["stakes"]
    assert seen["m"] and all(role == "system" and text.endswith(phrase) for role, text in seen["m"])
    assert seen["p"] and not any(phrase in text for _, text in seen["p"])
    assert metrics.stimulus == "negative/stakes"
    assert "stimulus: negative/stakes" in (tmp_path / "report.md").read_text()
