import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


import contextlib
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from agents.requests import ChatRequest, Completion, Streaming
from dialogue.running.config import validate

REPO = Path(__file__).resolve().parents[1]


def agora(*args, env=None, **kw) -> subprocess.CompletedProcess:
    """The `agora` command in a subprocess, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "agora", *args],
        cwd=kw.pop("cwd", REPO),
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        **kw,
    )


CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_model(path: Path, initializer_range: float = 0.02) -> Path:
    """A randomly initialised Llama with a byte-level BPE tokenizer trained here, offline.

    At the usual initialisation its next-token distribution hardly depends on the context; a
    larger `initializer_range` gives a model whose outputs do, for tests that must see a wrong
    position or a misaligned cache change the result."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = [
        "Answer: A. Answer: B. Answer: C. Answer: D. I agree. The answer is 42.",
        "Which planet is closest to the sun? Mercury Venus Earth Mars Jupiter Saturn",
        "You are taking part in a discussion. Persuade the other participant.",
    ] * 20
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
    )
    tokenizer.chat_template = CHATML
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        initializer_range=initializer_range,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-llama")))


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@contextlib.contextmanager
def chromium_page(width: int = 1280, height: int = 900):
    """A page in Debian's headless Chromium (Playwright drives it), and the list of the dialogs
    it opened (a script that ran would open one); the dialogs are dismissed."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "the page tests need Chromium: `make test` installs it (make browser)"
    dialogs: list[str] = []
    with sync_playwright() as p:
        # Flags: no sandbox as root, and no background connections on a machine with no network.
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": width, "height": height})
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        try:
            yield page, dialogs
        finally:
            browser.close()


def add_turn(tree, turn_id: str, **fields) -> None:
    """Add a turn to a tree built by hand: its parent and depth follow from its path id."""
    from dialogue.core.tree import Turn

    parent = turn_id.rsplit(".", 1)[0] if "." in turn_id else None
    defaults = {"speaker": "A", "instruction": "neutral", "text": f"text of {turn_id}", "answer": None}
    defaults |= {"correct": None, "agrees_with_parent": None}
    tree.add_turn(Turn(id=turn_id, parent=parent, depth=turn_id.count("."), **{**defaults, **fields}))


def compose_simulate(overrides: list[str]):
    with initialize_config_module(config_module="conf", version_base="1.3"):
        return compose(config_name="simulate", overrides=overrides)


def simulate_config(overrides: list[str]):
    return validate(compose_simulate(overrides))


def tiny_overrides(model: str, out: Path, *extra: str) -> list[str]:
    return [
        f"agents.A.model={model}",
        f"agents.B.model={model}",
        "agents.A.sampling.max_tokens=12",
        "agents.B.sampling.max_tokens=12",
        "dataset.limit=3",
        "progress=false",
        f"out={out}",
        *extra,
    ]


class ScriptedBackend(Streaming):
    """Answers by rule, for tests that need to know exactly what each turn says.

    `rule(request) -> reply` sees the request's messages and the instruction (the last user
    message). A reply is ready at once, or, with `steps(request) -> n`, after n calls of `step`,
    like a real engine's decoding steps. Everything else in the run is the real code.
    """

    def __init__(self, rule, model_id="scripted", steps=None):
        super().__init__()
        self.rule = rule
        self.model_id = model_id
        self.steps = steps
        self.calls: list[int] = []  # the size of each submission
        self.log: list[tuple[str, int]] = []  # ("submit" | "done", the request's seed), in order
        self._pending: dict[int, list] = {}  # ticket -> [steps left, completion, seed]

    def _start(self, tickets, requests):
        self.calls.append(len(requests))
        for ticket, r in zip(tickets, requests, strict=True):
            self.log.append(("submit", r.seed))
            done = Completion(
                text=self.rule(r),
                prompt_tokens=len(str(r.messages)),
                completion_tokens=3,
                finish_reason="stop",
                latency_s=0.001,
            )
            self._pending[ticket] = [self.steps(r) if self.steps else 0, done, r.seed]

    def _working(self):
        return bool(self._pending)

    def _advance(self, wait):
        finished = []
        for ticket, entry in list(self._pending.items()):
            entry[0] -= 1
            if entry[0] < 0:
                del self._pending[ticket]
                finished.append((ticket, entry[1]))
                self.log.append(("done", entry[2]))
        return finished

    def close(self) -> None:
        pass


def instruction_of(request: ChatRequest, instructions: dict[str, str]) -> str:
    last = request.messages[-1][1]
    for name, text in instructions.items():
        if last.startswith(text.strip()) or ("\n\n" + text.strip()) in last:
            return name
    raise AssertionError(f"no instruction found in {last!r}")


PERSUADER_INSTRUCTIONS = {"neutral", "logical", "emotional", "credibility"}


def scripted_run(path, monkeypatch, questions=24, seed=0, *overrides, reply=None):
    """The default pbt_tree config. A always answers A; B answers B, except under `accept`,
    where it takes A. Questions whose gold is A give accept pairs, gold B gives resist pairs.
    `reply(instruction name, request) -> text` replaces that rule."""
    config = simulate_config(
        [f"out={path}", f"dataset.limit={questions}", "progress=false", f"seed={seed}", *overrides]
    )
    instructions = config.protocol.instructions

    def default_reply(name):
        letter = "A" if name in PERSUADER_INSTRUCTIONS | {"accept"} else "B"
        return f"I have thought about it ({name}). Answer: {letter}"

    def rule(request):
        name = instruction_of(request, instructions)
        return reply(name, request) if reply else default_reply(name)

    from dialogue.running.simulate import simulate  # imported here: conftest stays cheap to import

    monkeypatch.setattr("dialogue.running.simulate.make_backend", lambda *a, **k: ScriptedBackend(rule))
    simulate(config, path)
    return path


@pytest.fixture
def exports(tmp_path, monkeypatch) -> Path:
    """A folder with the pbt, aft and kto exports of a scripted run over 12 questions."""
    from dialogue.mining.export import MineConfig, mine

    run = scripted_run(tmp_path / "run", monkeypatch, questions=12)
    monkeypatch.undo()
    for miner in ("pbt", "aft", "kto"):
        mine(MineConfig(run=[str(run)], out=str(tmp_path / miner), miner={"name": miner}))
    return tmp_path


SUITE_ORDER = [
    "are_you_sure",
    "assessment",
    "balanced",
    "critique",
    "misinformation",
    "reasoning",
    "team_debate",
    "verifier",
]


def eval_all(exports, model) -> list[str]:
    """`agora eval` of every suite, test-sized, on the scripted runs' pbt, aft and stepwise exports."""
    return [
        "eval",
        f"model={model}",
        f"data={exports / 'pbt'}",
        f"data={exports / 'aft'}",
        f"data={exports / 'stepwise'}",
        "dataset.split=all",
        "dataset.limit=3",
        "critique.count=3",
        "max_tokens=8",
        "resamples=50",
        "progress=false",
    ]


@pytest.fixture(scope="session")
def evaluated_all(tmp_path_factory, tiny_model) -> tuple[Path, list[str]]:
    """One `agora eval` of every suite on the tiny model, shared by the tests that read what it
    wrote (the report, the page, the plots): the folder and the command's arguments. Read only."""
    from dialogue.mining.export import MineConfig, mine

    root = tmp_path_factory.mktemp("evaluated-all")
    with pytest.MonkeyPatch.context() as mp:
        run = scripted_run(root / "run", mp, questions=12)
        rollouts = scripted_rollouts_run(root / "rollouts", mp, 12)
    for miner in ("pbt", "aft"):
        mine(MineConfig(run=[str(run)], out=str(root / miner), miner={"name": miner}))
    mine(MineConfig(run=[str(rollouts)], out=str(root / "stepwise"), miner={"name": "stepwise"}))
    out, args = root / "out", eval_all(root, tiny_model)
    done = agora(*args, f"out={out}")
    assert done.returncode == 0, done.stderr
    assert f"page: {out}/report.html" in done.stdout
    return out, args


def scripted_export(root: Path, miner: str) -> Path:
    """`agora mine miner=MINER` over a scripted run made under `root`: the export folder."""
    from dialogue.mining.export import MineConfig, mine

    with pytest.MonkeyPatch.context() as mp:
        run = scripted_run(root / "run", mp)
    mine(MineConfig(run=[str(run)], out=str(root / miner), miner={"name": miner}))
    return root / miner


def scripted_critique_run(path, monkeypatch, questions=10):
    """protocol=critique on arithmetic. Solutions and revisions are right for even seeds; critics
    give the right verdict, the wrong verdict, or prose that is not JSON, by seed."""
    import json

    from dialogue.core.questions import load_questions
    from dialogue.running.simulate import simulate

    config = simulate_config(
        [f"out={path}", "protocol=critique", "dataset=arithmetic", f"dataset.limit={questions}", "progress=false"]
    )
    gold = {q.question: q.gold for q in load_questions(config.dataset).questions}

    def rule(request):
        question = next(text for role, text in request.messages if role == "user")
        answer = gold[next(q for q in gold if question.startswith(q))]
        instruction = instruction_of(request, config.protocol.instructions)
        if instruction == "critique":
            solution_right = f"Answer: {answer}" in request.messages[-1][1]
            kind = request.seed % 3
            if kind == 2:
                return "This looks fine to me."
            verdict = solution_right if kind == 0 else not solution_right
            return json.dumps(
                {"step_1": {"correctness": verdict, "explanation": "checked"}, "answer_correctness": verdict}
            )
        return f"Step 1: think.\nAnswer: {answer if request.seed % 2 == 0 else int(answer) + 1}"

    monkeypatch.setattr("dialogue.running.simulate.make_backend", lambda *a, **k: ScriptedBackend(rule))
    simulate(config, path)
    return path


def scripted_rollouts_run(path, monkeypatch, questions=6, *overrides, slips=None):
    """protocol=rollouts from planted worked solutions on arithmetic, continued by a scripted
    answerer that goes on correctly from whatever value its prefix reached: a prefix is worth 1
    until its first wrong step and 0 from there, so the first pits are the planted steps.

    `slips(request) -> bool`: the answerer writes its own solutions instead (4 per question, one
    continuation per prefix), right except where `slips` says; those add one at step 2, all in the
    same way, and mark every step from there with the word "Mars"."""
    import re

    from dialogue.core.questions import load_questions
    from dialogue.core.steps import SYMBOLS
    from dialogue.running.simulate import simulate

    config = simulate_config(
        [
            f"out={path}",
            "protocol=rollouts",
            f"protocol.planted={slips is None}",
            f"protocol.continuations={2 if slips is None else 1}",
            *([] if slips is None else ["protocol.solutions=4"]),
            "dataset=arithmetic",
            f"dataset.limit={questions}",
            "progress=false",
            *overrides,
        ]
    )
    worked = {q.question: q.worked for q in load_questions(config.dataset).questions}

    def rule(request):
        question = next(text for role, text in request.messages if role == "user")
        operations = worked[next(q for q in worked if question.startswith(q))]
        prefix = next((text for role, text in request.messages if role == "assistant"), "")
        values = [int(v) for v in re.findall(r"= (-?\d+)", prefix)]
        slip = slips is not None and not prefix and slips(request)
        value, lines = values[-1] if values else operations[0].before, []
        for number, op in enumerate(operations[len(values) :], len(values) + 1):
            result = op.apply(value) + (1 if slip and number == 2 else 0)
            lines.append(
                f"Step {number}: {value} {SYMBOLS[op.op]} {op.n} = {result}" + (" Mars" * (slip and number >= 2))
            )
            value = result
        return "\n".join(lines) + f"\nAnswer: {value}"

    monkeypatch.setattr("dialogue.running.simulate.make_backend", lambda *a, **k: ScriptedBackend(rule))
    simulate(config, path)
    return path


def cached_completions(cache: Path) -> int:
    """How many completions a run's generation cache holds, read while the run writes it: 0 before
    the file exists (connecting would create it) or while it cannot be read."""
    import sqlite3

    if not cache.exists():
        return 0
    try:
        with sqlite3.connect(cache, timeout=0.1) as db:
            return db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]
    except sqlite3.Error:
        return 0


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick), for a server or launcher a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
