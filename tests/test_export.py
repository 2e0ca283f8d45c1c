"""`agora mine` end to end: a default simulation (on a scripted backend whose answers are known)
is mined (training on the files is tested in test_train.py)."""

import json
import re
import shutil

import pytest
from datasets import load_dataset

from agents.errors import AgoraError
from dialogue.core.questions import DatasetConfig
from dialogue.mining.export import MineConfig, mine
from dialogue.running.rundir import RunDir
from tests.conftest import PERSUADER_INSTRUCTIONS, agora, scripted_critique_run, scripted_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        return scripted_run(tmp_path_factory.mktemp("run"), mp)


def mined(run_dir, out, **miner):
    return mine(MineConfig(run=[str(run_dir)], out=str(out), miner=miner))


def test_pbt_rows_have_neutral_prompts_labels_and_clean_splits(run_dir, tmp_path):
    card = mined(run_dir, tmp_path / "pbt", name="pbt")
    assert card.rows > 0 and set(card.counts["label"]) == {"accept", "resist"}
    assert card.sources[0].trees == 24 and card.bad_lines == []
    splits = {
        s: load_dataset("parquet", data_files=str(tmp_path / "pbt" / f"{s}.parquet"))["train"]
        for s in ("train", "validation", "test")
    }
    assert sum(len(d) for d in splits.values()) == card.rows
    questions = [set(d["question_id"]) for d in splits.values()]
    assert not (questions[0] & questions[1] or questions[0] & questions[2] or questions[1] & questions[2])
    role_wording = json.loads((run_dir / "manifest.json").read_text())["config"]["protocol"]["instructions"]
    for row in splits["train"]:
        prompt_text = " ".join(m["content"] for m in row["prompt"])
        assert role_wording["neutral"].split()[0] in prompt_text
        for name in ("resist", "accept", "logical", "emotional", "credibility"):
            assert role_wording[name] not in prompt_text
        assert row["prompt"][-1]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
        assert row["chosen"] != row["rejected"]
        # accept: the chosen reply took the persuader's correct answer
        expected = {"accept": "accept", "resist": "resist"}[row["label"]]
        assert row["chosen_instruction"] == expected and row["level"] == 3


def test_pbt_mines_the_persuadee_by_default_and_more_when_asked(run_dir, tmp_path):
    default = mined(run_dir, tmp_path / "b", name="pbt")
    widened = mined(run_dir, tmp_path / "ab", name="pbt", responders="all")
    named = mined(run_dir, tmp_path / "named", name="pbt", responders=["A", "B"])
    assert default.sources[0].responders == ["B"] and widened.sources[0].responders == "all"
    assert named.sources[0].responders == ["A", "B"] and named.rows == widened.rows >= default.rows
    rows = load_dataset("parquet", data_files=str(tmp_path / "b" / "train.parquet"))["train"]
    assert {m["role"] for row in rows for m in row["chosen"]} == {"assistant"}
    assert all(row["chosen_instruction"] in ("resist", "accept") for row in rows)  # B's instructions only
    # B's first answers are independent: no persuasion to resist or accept, so nothing to train on
    with pytest.raises(AgoraError, match="no train rows"):
        mined(run_dir, tmp_path / "l1", name="pbt", levels=[1])
    only_level_1 = json.loads((tmp_path / "l1" / "card.json").read_text())
    assert only_level_1["rows"] == 0 and only_level_1["persuasions"]["train"]["turns"] == 0


def test_mining_says_why_persuasion_turns_gave_no_pairs_and_fails_on_an_empty_train_split(tmp_path):
    """A answers A and B first answers B, so every question whose gold is A or B has a persuasion
    turn; B then lists the choices (under resist) or names one choice's letter with another's text
    (under accept): no reply can be read, no turn gives a pair, and the card counts why."""

    def reply(name, request):
        if name in PERSUADER_INSTRUCTIONS:
            return "Answer: A"
        if not any(role == "assistant" for role, _ in request.messages):  # B's first answer
            return "Answer: B"
        if name == "resist":
            return "A) one\nB) two\nC) three\nD) four"
        question = next(text for role, text in request.messages if role == "user")
        return "I go with A) " + re.search(r"^C\) (.*)$", question, re.M).group(1)

    with pytest.MonkeyPatch.context() as mp:
        run = scripted_run(tmp_path / "run", mp, 24, 0, reply=reply)
    with pytest.raises(AgoraError) as error:
        mined(run, tmp_path / "pbt", name="pbt")
    card = json.loads((tmp_path / "pbt" / "card.json").read_text())
    assert card["rows"] == 0
    counts = card["persuasions"]["train"]
    lost = {reason: n for reason, n in counts["lost"].items() if n}
    # every level-2 turn answers a B whose first answer was read; B's replies to it were not
    assert counts["with_pairs"] == 0 and counts["turns"] == sum(lost.values()) > 0
    # gold A: B was wrong and A right (accept), gold B: B right and A wrong (resist): either way the
    # accept reply is a conflict, which is what kept it out; gold C or D: both wrong
    assert set(lost) == {"conflict", "both_wrong"}
    message = str(error.value)
    assert f"train persuasion turns: {counts['turns']}, with pairs: 0" in message
    assert f"conflict {lost['conflict']}" in message and "miner.score=subtree" in message
    # one accept reply per persuasion turn, and the judge counted each as a conflict
    assert card["judge"]["conflicts"]["B"] == sum(c["turns"] for c in card["persuasions"].values())
    # training on it says that mining wrote it with no train rows, and why
    done = agora("train", "trainer=dpo", f"data={tmp_path / 'pbt'}", "model=smollm2-135m", f"out={tmp_path / 'm'}")
    assert done.returncode == 2 and "wrote this export with 0 train rows" in done.stderr
    assert f"conflict {lost['conflict']}" in done.stderr and not (tmp_path / "m").exists()


def test_a_small_test_split_is_warned_of_when_mining_and_simulating(run_dir, tmp_path, capsys, monkeypatch):
    mined(run_dir, tmp_path / "pbt", name="pbt")
    assert "the 24 questions chosen hold" in capsys.readouterr().err  # and the balanced suite is named
    scripted_run(tmp_path / "run", monkeypatch, 24)  # the library call warns only when asked
    assert "warning" not in capsys.readouterr().err
    from dialogue.running.simulate import simulate
    from tests.conftest import simulate_config

    simulate(
        simulate_config([f"out={tmp_path / 'run'}", "dataset.limit=24", "progress=false"]),
        tmp_path / "run",
        warn_splits=True,
    )
    assert "warning: the 24 questions chosen hold" in capsys.readouterr().err


def test_identical_rows_are_written_once(run_dir, tmp_path):
    shutil.copytree(run_dir, tmp_path / "copy")
    alone = mined(run_dir, tmp_path / "alone", name="pbt")
    twice = mine(MineConfig(run=[str(run_dir), str(tmp_path / "copy")], out=str(tmp_path / "both")))
    assert twice.rows == alone.rows > 0 and twice.duplicates == {"": alone.rows}
    assert alone.duplicates == {"": 0}


def test_balance_keeps_equally_many_accept_and_resist(run_dir, tmp_path):
    card = mined(run_dir, tmp_path / "bal", name="pbt", balance=True)
    assert card.balance["train"].balanced
    for path in (tmp_path / "bal").glob("*.parquet"):
        labels = load_dataset("parquet", data_files=str(path))["train"]["label"]
        if card.balance[path.stem].balanced:
            assert labels.count("accept") == labels.count("resist") > 0
        else:  # one label only: kept as it was, and the card says so
            assert min(labels.count("accept"), labels.count("resist")) == 0
            assert len(labels) == card.balance[path.stem].accept + card.balance[path.stem].resist


def test_balance_never_silently_empties_a_split(tmp_path, monkeypatch):
    """Four questions: too few for a validation or test split with both labels."""
    run = scripted_run(tmp_path / "small", monkeypatch, questions=6)
    card = mined(run, tmp_path / "bal", name="pbt", balance=True)
    unbalanced = {s: found for s, found in card.balance.items() if not found.balanced}
    assert unbalanced  # some split had one label only
    for split, found in unbalanced.items():
        kept = card.counts["split"][split]
        assert kept == found.accept + found.resist > 0  # kept, not emptied
    done = agora("mine", f"run={run}", "miner.balance=true", f"out={tmp_path / 'cli'}")
    assert done.returncode == 0, done.stderr
    split = next(iter(unbalanced))
    assert f"the {split} split cannot be balanced (accept={unbalanced[split].accept}, " in done.stderr


def test_two_runs_of_the_same_questions_never_share_a_question_across_splits(run_dir, tmp_path, monkeypatch):
    other = scripted_run(tmp_path / "run2", monkeypatch, seed=1)
    out = tmp_path / "both"
    result = agora("mine", f"run={run_dir}", f"run={other}", f"out={out}")
    assert result.returncode == 0, result.stderr
    card = json.loads((out / "card.json").read_text())
    assert [s["run"] for s in card["sources"]] == [str(run_dir), str(other)]
    seen = {}
    for path in out.glob("*.parquet"):
        for qid in load_dataset("parquet", data_files=str(path))["train"]["question_id"]:
            assert seen.setdefault(qid, path.stem) == path.stem
    assert len(seen) == card["questions"]["train"] + card["questions"]["validation"] + card["questions"]["test"]
    # the split is the one rule of the runs' dataset config, and the card names each split's questions
    rule = DatasetConfig().split_rule
    assert card["split_rule"] == rule.to_json()
    for split in ("train", "validation", "test"):
        assert all(rule.of(qid) == split for qid in card["question_ids"][split])
        assert len(card["question_ids"][split]) == card["questions"][split]


def test_a_corrupt_line_is_reported_with_its_number_and_the_rest_is_mined(run_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    lines = (copy / "trees.jsonl").read_text().splitlines(keepends=True)
    lines[2] = lines[2][: len(lines[2]) // 2] + "\n"
    (copy / "trees.jsonl").write_text("".join(lines))
    out = tmp_path / "mined"
    result = agora("mine", f"run={copy}", f"out={out}")
    assert result.returncode == 0, result.stderr
    assert "trees.jsonl:3:" in result.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["sources"][0]["trees"] == 23 and len(card["bad_lines"]) == 1


def test_an_existing_dataset_is_not_overwritten_by_accident(run_dir, tmp_path):
    mined(run_dir, tmp_path / "once", name="sft")
    with pytest.raises(AgoraError, match="overwrite=true"):
        mined(run_dir, tmp_path / "once", name="sft")
    assert (tmp_path / "once" / "card.json").exists()


def test_kto_sft_and_aft_views(run_dir, tmp_path):
    kto = mined(run_dir, tmp_path / "kto", name="kto")
    rows = load_dataset("parquet", data_files=str(tmp_path / "kto" / "train.parquet"))["train"]
    assert set(rows["label"]) == {True, False} and set(rows.column_names) >= {"prompt", "completion", "label"}
    sft = mined(run_dir, tmp_path / "sft", name="sft")
    pbt = mined(run_dir, tmp_path / "pbt", name="pbt")
    # each chosen reply once, and here every chosen reply is in exactly one pair
    assert sft.rows == pbt.rows and kto.rows == 2 * pbt.rows
    # aft: B's two independent answers differ in correctness on gold-A and gold-B questions
    aft = mined(run_dir, tmp_path / "aft", name="aft")
    assert aft.rows > 0
    row = load_dataset("parquet", data_files=str(tmp_path / "aft" / "train.parquet"))["train"][0]
    assert (
        row["positives"] and row["negatives"] and sorted(row["ranked"]) == sorted(row["positives"] + row["negatives"])
    )


def test_critique_protocol_run_mines_into_four_datasets(tmp_path, monkeypatch):
    out = scripted_critique_run(tmp_path / "run", monkeypatch)
    trees = list(RunDir(out).trees())
    assert all(len(t) == 1 + 3 + 3 * 2 for t in trees)
    critics = [u for t in trees for u in t.turns() if u.instruction == "critique"]
    assert any(c.parsed and "error" in c.parsed for c in critics) and any(
        c.parsed and "steps" in c.parsed for c in critics
    )
    card = mine(MineConfig(run=[str(out)], out=str(tmp_path / "mined"), miner={"name": "critique"}))
    assert card.failed_parses == sum(1 for c in critics if "error" in c.parsed)
    assert {k.split("/")[0] for k in card.counts["split"]} == {
        "critique_sft",
        "critique_pairs",
        "correction_sft",
        "revision_pairs",
    }
    for subset in ("critique_sft", "critique_pairs", "correction_sft", "revision_pairs"):
        assert sum(card.counts["split"][f"{subset}/{split}"] for split in ("train", "validation", "test")) > 0
    for subset in ("critique_sft", "critique_pairs"):
        row = load_dataset("parquet", data_files=str(tmp_path / "mined" / subset / "train.parquet"))["train"][0]
        assert json.loads(row["chosen" if "chosen" in row else "completion"][0]["content"])["answer_correctness"] in (
            True,
            False,
        )
        assert (
            "Answer:" not in row["prompt"][-1]["content"].split("\n\n")[-1]
        )  # the critic is not asked for an answer line
