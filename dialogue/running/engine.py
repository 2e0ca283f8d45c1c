"""The simulation engine: the trees of a run, grown turn by turn as replies arrive.

Requests stream through the backends: as soon as a turn's reply is read, the protocol is asked
for its children and their requests are submitted (siblings together, so prefix caching can
reuse what they share), while the backend goes on generating everything else. No turn waits for
the rest of its level, and no tree for another tree. Trees enter through a window of
`max_active_trees`, and each is handed to `on_tree_done` as soon as no branch of it grows.
Every turn's seed depends only on the run seed, the tree and the turn's id, so the trees do not
depend on the scheduling (exactly so in float32; see the transformers backend).
"""

from __future__ import annotations

import gc
import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from agents.agent import Agent
from agents.requests import Backend, ChatRequest, Completion
from dialogue.core.judge import Judge, Reading
from dialogue.core.messages import turn_messages
from dialogue.core.tree import DialogueTree, GenInfo, Turn, child_id
from dialogue.protocols.base import ChildSpec, Protocol

ROOT_ID = "0"
NOT_READ = Reading(answer=None, only_agrees=False)


def derive_seed(seed: int, tree_id: str, turn_id: str) -> int:
    """A per-turn seed that depends on nothing but the run seed and where the turn sits."""
    digest = hashlib.sha256(f"{seed}:{tree_id}:{turn_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass
class Stats:
    turns: int = 0
    generated_tokens: int = 0  # by a backend in this invocation, cached completions excluded
    cached_turns: int = 0
    seconds: float = 0.0
    prompt_tokens: int = 0  # of the requests a backend served in this invocation
    prefix_hit_tokens: int = 0  # of those, the tokens it read from KV it had already computed

    @property
    def prefix_hit_rate(self) -> float:
        return self.prefix_hit_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds else 0.0


@dataclass
class _Job:
    tree: DialogueTree
    parent: Turn | None  # the turn it answers; None for the root
    turn_id: str
    spec: ChildSpec
    request: ChatRequest | None  # None for a turn whose words are given
    completion: Completion | None = None
    turn: Turn | None = None  # once added to the tree


@dataclass
class Engine:
    protocol: Protocol
    agents: dict[str, Agent]
    backends: dict[str, Backend]  # by Agent.backend_key
    judge: Judge
    answer_format: str  # appended to every role instruction
    seed: int = 0
    progress: bool = True
    max_active_trees: int = 256  # trees growing at once; the rest wait their turn
    stats: Stats = field(default_factory=Stats)

    def run(
        self, trees: Iterable[DialogueTree], on_tree_done: Callable[[DialogueTree], None], total: int | None = None
    ) -> Stats:
        """Grow `trees` to the end and hand each to `on_tree_done` when it stops. A tree may be
        partly grown already (a resumed run): only the turns it lacks are generated.

        Trees are taken from `trees` as room opens in the window of `max_active_trees`, so a
        run over any number of questions holds a bounded number in memory. A turn's children
        are asked for as soon as its own reply is read, while other requests are generating."""
        with fewer_collections():
            return self._run(trees, on_tree_done, total)

    def _run(
        self, trees: Iterable[DialogueTree], on_tree_done: Callable[[DialogueTree], None], total: int | None
    ) -> Stats:
        started = time.perf_counter()
        total = total if total is not None else (len(trees) if isinstance(trees, Sized) else None)
        bar = tqdm(total=total, desc="trees", unit="tree", disable=not self.progress)
        queue = iter(trees)
        in_flight: dict[tuple[str, int], _Job] = {}  # (backend key, ticket) -> job
        ready: list[_Job] = []  # jobs whose completion is known: given words, or just finished
        open_jobs: dict[int, int] = {}  # id(tree) -> its jobs not yet added as turns

        def send(tree: DialogueTree, frontier: list[Turn | None]) -> None:
            jobs = self._jobs(tree, frontier)
            open_jobs[id(tree)] = open_jobs.get(id(tree), 0) + len(jobs)
            by_backend: dict[str, list[_Job]] = {}
            for job in jobs:
                if job.spec.fixed_text is not None:
                    job.completion = Completion(job.spec.fixed_text, 0, 0, "fixed", 0.0)
                    ready.append(job)
                else:
                    by_backend.setdefault(self.agents[job.spec.speaker].backend_key, []).append(job)
            for key, group in by_backend.items():  # siblings go in together
                tickets = self.backends[key].submit([job.request for job in group])
                in_flight.update({(key, ticket): job for ticket, job in zip(tickets, group, strict=True)})

        def finish_if_done(tree: DialogueTree) -> None:
            if open_jobs[id(tree)] == 0:
                del open_jobs[id(tree)]
                on_tree_done(tree)
                bar.update(1)

        exhausted = False
        while True:
            while not exhausted and len(open_jobs) < self.max_active_trees:
                tree = next(queue, None)
                if tree is None:
                    exhausted = True
                    break
                send(tree, [None] if len(tree) == 0 else tree.turns())
                finish_if_done(tree)  # a resumed tree may lack nothing
            if not open_jobs:
                break
            busy = [key for key, backend in self.backends.items() if backend.busy()]
            if not busy and not ready:
                raise RuntimeError(f"the engine waits on {len(in_flight)} requests that no backend holds")
            for key in busy:  # block on a backend only when nothing else can make progress
                for ticket, completion in self.backends[key].step(wait=not ready and len(busy) == 1):
                    job = in_flight.pop((key, ticket))
                    job.completion = completion
                    ready.append(job)
            done, ready = ready, []
            if done:
                self._add_turns(done)
            for job in done:
                open_jobs[id(job.tree)] -= 1
                if job.completion.error is None:  # a failed turn grows nothing; a rerun retries it
                    send(job.tree, [job.turn])
            for tree in dict.fromkeys(job.tree for job in done):
                finish_if_done(tree)
            self.stats.seconds = time.perf_counter() - started
            if done:
                bar.set_postfix(
                    turns=self.stats.turns,
                    tokens=self.stats.generated_tokens,
                    tok_s=f"{self.stats.tokens_per_s:.0f}",
                    refresh=False,
                )
                bar.update(0)
        bar.close()
        self.stats.seconds = time.perf_counter() - started
        return self.stats

    def _jobs(self, tree: DialogueTree, frontier: list[Turn | None]) -> list[_Job]:
        """The turns to add below each of `frontier` (None: the root), minus those `tree` has."""
        jobs = []
        for turn in frontier:
            specs = [self.protocol.first(tree)] if turn is None else self.protocol.children(tree, turn)
            parent = None if turn is None else turn.id
            index = 0
            for spec in specs:
                for _ in range(spec.samples):
                    turn_id = ROOT_ID if parent is None else child_id(parent, index)
                    index += 1
                    if turn_id not in tree.graph:  # a resumed tree keeps the turns it has
                        request = None if spec.fixed_text is not None else self._request(tree, parent, turn_id, spec)
                        jobs.append(_Job(tree, turn, turn_id, spec, request))
        return jobs

    def _request(self, tree: DialogueTree, parent: str | None, turn_id: str, spec: ChildSpec) -> ChatRequest:
        agent = self.agents[spec.speaker]
        messages = turn_messages(
            self.protocol,
            tree,
            parent,
            spec.speaker,
            spec.instruction,
            agent.persona,
            self.answer_format,
            many_agents=len(self.agents) > 2,
        )
        seed = derive_seed(self.seed, tree.tree_id, turn_id)
        return ChatRequest(messages, agent.sampling, seed, tree.tree_id, agent.adapter)

    def _add_turns(self, jobs: list[_Job]) -> None:
        # a turn that is neither right nor wrong (a given prefix, a backward question) is not read
        against = [self.protocol.judged_against(job.tree, job.spec.instruction) for job in jobs]
        read = iter(
            self.judge.read_batch(
                [
                    (job.completion.text, question, job.completion.finish_reason == "length")
                    for job, question in zip(jobs, against, strict=True)
                    if question is not None
                ]
            )
        )
        readings = [NOT_READ if question is None else next(read) for question in against]
        for job, reading, question in zip(jobs, readings, against, strict=True):
            done = job.completion
            parent = job.parent
            answer, agrees = agreement(reading, parent)
            gen = (
                None
                if job.request is None
                else GenInfo(
                    model=self.agents[job.spec.speaker].model,
                    temperature=job.request.sampling.temperature,
                    top_p=job.request.sampling.top_p,
                    max_tokens=job.request.sampling.max_tokens,
                    seed=job.request.seed,
                    prompt_tokens=done.prompt_tokens,
                    completion_tokens=done.completion_tokens,
                    finish_reason=done.finish_reason,
                    latency_s=done.latency_s,
                    error=done.error,
                )
            )
            job.turn = Turn(
                id=job.turn_id,
                parent=None if parent is None else parent.id,
                depth=0 if parent is None else parent.depth + 1,
                speaker=job.spec.speaker,
                instruction=job.spec.instruction,
                text=done.text,
                answer=answer,
                correct=None if question is None else self.judge.is_correct(answer, question),
                agrees_with_parent=agrees,
                parsed=_parsed(self.protocol.parse(job.spec, done.text), reading),
                gen=gen,
            )
            job.tree.add_turn(job.turn)
            self.stats.turns += 1
            if job.request is None or done.error is not None:  # failures are counted from the trees
                continue
            if done.cached:
                self.stats.cached_turns += 1
            else:
                self.stats.generated_tokens += done.completion_tokens
                self.stats.prompt_tokens += done.prompt_tokens
                self.stats.prefix_hit_tokens += done.prefix_hit_tokens


@contextmanager
def fewer_collections(young: int = 50_000) -> Iterator[None]:
    """Python's cyclic collector, tuned for a loop that makes many small objects per turn: what
    exists before the loop (models, questions, modules) is set aside (`gc.freeze`), and young
    objects are collected every `young` allocations instead of 700. With the defaults the
    collector took about a tenth of the engine's own time (`benchmarks/engine_overhead.py`)."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(young, threshold[0]), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def agreement(reading: Reading, parent: Turn | None) -> tuple[str | None, bool | None]:
    """(the turn's answer, whether it agrees with the turn it answers). A turn that only says it
    agrees takes its parent's answer, and agrees; otherwise it agrees when both answers were read
    and are the same, disagrees when they differ, and nobody can tell when either was not read."""
    if parent is None:
        return reading.answer, None
    if reading.only_agrees:
        return parent.answer, True
    if reading.answer is None or parent.answer is None:
        return reading.answer, None
    return reading.answer, reading.answer == parent.answer


def _parsed(by_protocol: dict | None, reading) -> dict | None:
    """What the protocol read from a turn, why the judge read no answer from it, if so, and the
    reply's length where the judge read only its ends."""
    by_judge = {**(reading.problem or {}), **({"judge_cut": reading.cut} if reading.cut else {})}
    if by_protocol is None and not by_judge:
        return None
    return {**(by_protocol or {}), **by_judge}
