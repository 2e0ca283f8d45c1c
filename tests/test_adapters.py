"""Several LoRA adapters of one base served side by side by one backend (docs/design.md, section 5)."""

import json
from pathlib import Path

import pytest
import torch

from agents.backends.transformers_backend import TransformersBackend
from agents.requests import ChatRequest, Sampling
from dialogue.running.rundir import RunDir
from dialogue.running.simulate import Serving, servings, simulate
from tests.conftest import build_tiny_model, simulate_config, tiny_overrides

GREEDY = Sampling(temperature=0.0, top_p=1.0, max_tokens=10)


def write_adapter(base: str, path: Path, seed: int, std: float = 0.5, r: int = 4) -> str:
    """A LoRA adapter of `base` (its attention projections) with random weights, drawn with `std`:
    the default is large enough to change what a tiny model says."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base)
    torch.manual_seed(seed)
    lora = LoraConfig(r=r, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    peft = get_peft_model(model, lora)
    with torch.no_grad():
        for name, weight in peft.named_parameters():
            if "lora_" in name:
                weight.normal_(0.0, std)
    peft.save_pretrained(path)
    AutoTokenizer.from_pretrained(base).save_pretrained(path)
    config = json.loads((path / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == base  # what `agora train` writes too
    return str(path)


@pytest.fixture(scope="module")
def base_and_adapters(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    # a context-sensitive base: at the usual initialisation every prompt gives the same reply
    base = str(build_tiny_model(root / "base", initializer_range=0.2))
    return base, write_adapter(base, root / "one", 1), write_adapter(base, root / "two", 2)


def greedy_reply(backend, messages, adapter=""):
    return backend.generate([ChatRequest(messages, GREEDY, 0, adapter=adapter)])[0].text


def test_one_backend_serves_each_adapter_as_if_it_were_loaded_alone(base_and_adapters):
    base, one, two = base_and_adapters
    prompts = [(("user", f"Which planet is closest to the sun? Answer: {c}"),) for c in "ABCD"]
    shared = TransformersBackend(base, adapters=(one, two))
    # every prompt under every adapter, submitted together: one mixed batch, siblings across adapters
    mixed = shared.generate([ChatRequest(p, GREEDY, 0, adapter=a) for a in ("", one, two) for p in prompts])
    texts = [c.text for c in mixed]
    # each alone: a backend of its own, one request at a time (merging an adapter into the weights
    # rounds differently, which can flip a near tie of this random model's greedy choice)
    alone = {a: TransformersBackend(base, adapters=(a,)) for a in (one, two)}
    alone[""] = TransformersBackend(base)
    expected = [greedy_reply(alone[a], p, a) for a in ("", one, two) for p in prompts]
    assert texts == expected
    by_model = [texts[i * 4 : (i + 1) * 4] for i in range(3)]
    assert by_model[0] != by_model[1] != by_model[2] != by_model[0]  # the adapters change what is said
    # one base in memory: each adapter adds only its LoRA weights
    base_weights = sum(p.numel() for p in alone[""].model.parameters())
    held = sum(p.numel() for p in shared.model.parameters())
    lora = sum(p.numel() for n, p in shared.model.named_parameters() if "lora_" in n)
    assert held == base_weights + lora and lora < base_weights / 20


def test_agents_that_are_adapters_of_one_base_share_one_backend_and_speak_as_their_adapter(
    base_and_adapters, tmp_path, monkeypatch
):
    base, one, two = base_and_adapters
    overrides = [
        *tiny_overrides(one, tmp_path / "run", "dataset.limit=2"),
        f"agents.B.model={two}",
        *(f"agents.{a}.sampling.temperature=0" for a in "AB"),
    ]
    config = simulate_config(overrides)
    plan = servings(config)
    assert plan["A"].model == plan["B"].model == base and set(plan["A"].adapters) == {one, two}
    assert (plan["A"].adapter, plan["B"].adapter) == (one, two)
    pool = {}
    simulate(config, tmp_path / "run", pool=pool)
    (loaded,) = pool.values()  # one backend, one copy of the base
    assert set(loaded.adapters) == {one, two}
    loaded.close()
    # the reference: each agent on a backend of its own that holds its adapter only
    alone = {"A": Serving(base, (one,), one), "B": Serving(base, (two,), two)}
    monkeypatch.setattr("dialogue.running.simulate.servings", lambda config: alone)
    simulate(simulate_config([*overrides, f"out={tmp_path / 'alone'}"]), tmp_path / "alone")

    def turns(run):
        return {
            (tree.tree_id, t): (tree.turn(t).speaker, tree.turn(t).text)
            for tree in RunDir(run).trees()
            for t in tree.graph.nodes
        }

    shared, separate = turns(tmp_path / "run"), turns(tmp_path / "alone")
    assert shared == separate
    monkeypatch.undo()
    plain = [*overrides, f"agents.A.model={base}", f"agents.B.model={base}", f"out={tmp_path / 'base'}"]
    simulate(simulate_config(plain), tmp_path / "base")
    assert turns(tmp_path / "base") != shared  # what the adapters say is not what their base says
    speakers = [speaker for speaker, _ in shared.values()]
    assert speakers.count("A") >= 2 and speakers.count("B") >= 2
