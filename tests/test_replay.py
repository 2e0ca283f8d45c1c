"""`agora replay`: one agent's turns regenerated along the recorded branches."""

import json

import pytest

from dialogue.running.replay import replay
from dialogue.running.rundir import RunDir
from dialogue.running.simulate import simulate
from tests.conftest import agora, build_tiny_model, simulate_config, tiny_overrides


@pytest.fixture(scope="module")
def source(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("source")
    simulate(simulate_config(tiny_overrides(tiny_model, out)), out)
    return out


def texts(run_dir):
    return {t.tree_id: {u.id: (u.speaker, u.text) for u in t.turns()} for t in RunDir(run_dir).trees()}


def test_same_model_and_seed_reproduce_the_recorded_turns_from_the_cache(source, tmp_path):
    out = tmp_path / "same"
    result = replay(str(source), "B", {}, str(out), progress=False)
    run, stats = result.run, result.stats
    assert texts(out) == texts(source)
    b_turns = sum(1 for t in run.trees() for u in t.turns() if u.speaker == "B")
    assert stats.generated_tokens == 0 and stats.cached_turns == b_turns > 0
    manifest = run.manifest()
    assert manifest.status == "complete" and manifest.source_run == str(source.resolve())
    assert manifest.replay_agent == "B"


def test_another_model_changes_only_the_named_agents_turns(source, tmp_path):
    other = build_tiny_model(tmp_path / "other-model", initializer_range=0.5)
    out = tmp_path / "other"
    result = agora(
        "replay", f"run={source}", "replay.agent=B", f"agents.B.model={other}", f"out={out}", "progress=false"
    )
    assert result.returncode == 0, result.stderr
    before, after = texts(source), texts(out)
    assert before.keys() == after.keys()
    changed_b = 0
    for tree_id, turns in before.items():
        assert turns.keys() == after[tree_id].keys()  # the recorded shape
        for turn_id, (speaker, text) in turns.items():
            if speaker == "A":
                assert after[tree_id][turn_id] == (speaker, text)
            else:
                changed_b += after[tree_id][turn_id][1] != text
    assert changed_b > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["models"]["B"] == str(other) and manifest["models"]["A"] != str(other)

    table = agora("replay", "diff", str(source), str(out))
    assert table.returncode == 0, table.stderr
    assert "| tree | level | turns | changed |" in table.stdout and table.stdout.rstrip().splitlines()[-1].startswith(
        "| all |"
    )


def test_only_some_trees_and_bad_requests(source, tmp_path):
    first = next(iter(texts(source)))
    out = tmp_path / "one"
    result = agora("replay", f"run={source}", "replay.agent=B", f"replay.trees={first}", f"out={out}", "progress=false")
    assert result.returncode == 0, result.stderr
    assert list(texts(out)) == [first]
    wrong_agent = agora("replay", f"run={source}", "replay.agent=C", f"out={tmp_path / 'x'}")
    assert wrong_agent.returncode == 2 and "replay.agent: 'C'" in wrong_agent.stderr
    other_agent = agora("replay", f"run={source}", "replay.agent=B", "agents.A.model=x", f"out={tmp_path / 'y'}")
    assert other_agent.returncode == 2 and "only replay.agent=B" in other_agent.stderr


def test_a_wrapped_protocol_answers_every_hook_itself():
    """Replays and the critique suite wrap a protocol (`Delegating`); every hook `Protocol`
    declares, today's and any added later, must reach the wrapped protocol, or a replayed
    `reverse` run would, say, judge its turns against the wrong question."""
    import inspect

    from dialogue.protocols.base import Delegating, Protocol

    hooks = [name for name, _ in inspect.getmembers(Protocol, inspect.isfunction) if not name.startswith("_")]
    assert {"first", "children", "context", "judged_against", "parse"} <= set(hooks)

    class Inner(Protocol):
        name, instructions = "inner", {}

    for name in hooks:
        setattr(Inner, name, lambda self, *args, name=name: f"inner.{name}")
    wrapped = Delegating(Inner())
    for name in hooks:
        arguments = [None] * (len(inspect.signature(getattr(Protocol, name)).parameters) - 1)
        assert getattr(wrapped, name)(*arguments) == f"inner.{name}", name
