"""One prompt renderer: the prompt `agora mine` rebuilds for a turn is the request the engine sent
for it, and under another instruction it differs in nothing but the instruction's words."""

import json

import pytest

from dialogue.core.questions import load_questions
from dialogue.mining.export import prompt_builder
from dialogue.protocols import REGISTRY, make_protocol
from dialogue.running.rundir import RunDir
from dialogue.running.simulate import simulate
from tests.conftest import ScriptedBackend, simulate_config


def reply(request, golds: dict[str, str]) -> str:
    """Varied answers (a third of them right, where the question is shown), a critic's JSON, a
    persuader's argument, numbered steps: enough to grow every protocol."""
    last = request.messages[-1][1]
    shown = " ".join(text for _, text in request.messages)
    gold = next((g for question, g in golds.items() if question in shown), None)
    if gold is not None and request.seed % 3 == 0 and "JSON" not in last:
        return f"Step 1: 3 + 4 = 7\nThat settles it. Answer: {gold}"
    if "JSON" in last or "json" in last:
        return json.dumps({"step_1": {"correctness": True, "explanation": "ok"}, "answer_correctness": True})
    if "step" in last:
        return f"Step 1: 3 + 4 = 7\nStep 2: 7 * 2 = 14\nAnswer: {request.seed % 20}"
    return f"Because of reasons. Answer: {'ABCD'[request.seed % 4] if request.seed % 5 else request.seed % 50}"


# what a protocol needs beyond its defaults to grow here; every protocol of the registry is tested
NEEDS = {
    "debate": ["+agent@agents.C=smollm2"],
    "critique": ["dataset=arithmetic"],
    "rollouts": ["dataset=arithmetic", "protocol.solutions=2", "protocol.continuations=2"],
    "reverse": ["dataset=arithmetic"],
}
RUNS = [[f"protocol={name}", *NEEDS.get(name, [])] for name in sorted(REGISTRY)]
RUNS.append(["protocol=pbt_tree", "stimulus=negative", "stimulus.agents=[B]"])


@pytest.mark.parametrize("protocol", RUNS, ids=" ".join)
def test_the_mined_prompt_is_the_engine_request_with_only_the_instruction_swapped(protocol, tmp_path, monkeypatch):
    sent = {}

    def record(request):
        sent[request.seed] = request.messages
        return reply(request, golds)

    config = simulate_config([f"out={tmp_path}", "dataset.limit=3", "progress=false", *protocol])
    golds = {q.question: q.gold for q in load_questions(config.dataset).questions}
    monkeypatch.setattr("dialogue.running.simulate.make_backend", lambda *a, **k: ScriptedBackend(record))
    simulate(config, tmp_path)
    run = RunDir(tmp_path)
    prompt = prompt_builder(run.manifest(), str(tmp_path), [])
    rules = make_protocol(config.protocol)
    checked, instructions = 0, set()
    for tree in run.trees():
        for turn in tree.turns():
            if turn.gen is None:
                continue  # given words: no request was sent
            engine = sent[turn.gen.seed]
            assert prompt(tree, turn.parent, turn.speaker, turn.instruction) == engine
            if config.stimulus.phrase:  # in the system message of the agents it is for, and no other
                stimulus = config.stimulus.phrases[config.stimulus.phrase]
                assert (stimulus in engine[0][1]) == (turn.speaker in config.stimulus.agents)
            for other in rules.instructions:
                if other == turn.instruction or rules.asks_answer(other) != rules.asks_answer(turn.instruction):
                    continue
                swapped = prompt(tree, turn.parent, turn.speaker, other)
                assert swapped[:-1] == engine[:-1] and swapped[-1][0] == engine[-1][0]
                expected = engine[-1][1].replace(rules.wording(tree, turn.instruction), rules.wording(tree, other))
                assert swapped[-1][1] == expected
            checked += 1
            instructions.add(turn.instruction)
    # the trees grew past their first turns: replies under two or more instructions were checked
    assert checked >= 6 and len(instructions) >= 2
