"""The simulation engine: all trees of a run, expanded level by level.

Each level gathers every frontier turn of every active tree, asks the protocol for their
children, builds all the messages, and sends one batch per backend (siblings next to each
other, so prefix caching can reuse what they share). Answers for the whole level are then read
in one batch. A tree is handed to `on_tree_done` as soon as no branch of it grows any more.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from agents.agent import Agent
from agents.requests import Backend, ChatRequest, Completion
from dialogue.core.judge import Judge, Reading
from dialogue.core.messages import turn_messages
from dialogue.core.tree import DialogueTree, GenInfo, Turn, child_id
from dialogue.protocols.base import ChildSpec, Protocol

ROOT_ID = "0"


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

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds else 0.0


@dataclass
class _Job:
    tree: DialogueTree
    parent: str | None
    turn_id: str
    spec: ChildSpec
    request: ChatRequest
    completion: Completion | None = None


@dataclass
class Engine:
    protocol: Protocol
    agents: dict[str, Agent]
    backends: dict[str, Backend]  # by Agent.backend_key
    judge: Judge
    answer_format: str  # appended to every role instruction
    seed: int = 0
    progress: bool = True
    stats: Stats = field(default_factory=Stats)

    def run(self, trees: list[DialogueTree], on_tree_done: Callable[[DialogueTree], None]) -> Stats:
        """Grow `trees` to the end and hand each to `on_tree_done` when it stops. A tree may be
        partly grown already (a resumed run): only the turns it lacks are generated."""
        started = time.perf_counter()
        bar = tqdm(total=len(trees), desc="trees", unit="tree", disable=not self.progress)
        frontier: list[tuple[DialogueTree, str | None]] = [
            pair for t in trees for pair in ([(t, None)] if len(t) == 0 else [(t, turn_id) for turn_id in t.graph])
        ]
        while frontier:
            jobs = self._jobs(frontier)
            growing = {id(job.tree) for job in jobs}
            for tree in dict.fromkeys(t for t, _ in frontier):
                if id(tree) not in growing:
                    on_tree_done(tree)
                    bar.update(1)
            if not jobs:
                break
            self._generate(jobs)
            self._add_turns(jobs)
            frontier = [(job.tree, job.turn_id) for job in jobs if job.completion.error is None]
            # Trees whose every new turn failed have no frontier left: they are finished too.
            for tree in dict.fromkeys(job.tree for job in jobs):
                if not any(t is tree for t, _ in frontier):
                    on_tree_done(tree)
                    bar.update(1)
            self.stats.seconds = time.perf_counter() - started
            bar.set_postfix(
                turns=self.stats.turns,
                tokens=self.stats.generated_tokens,
                tok_s=f"{self.stats.tokens_per_s:.0f}",
            )
        bar.close()
        self.stats.seconds = time.perf_counter() - started
        return self.stats

    def _jobs(self, frontier: list[tuple[DialogueTree, str | None]]) -> list[_Job]:
        jobs = []
        for tree, parent in frontier:
            specs = [self.protocol.first(tree)] if parent is None else self.protocol.children(tree, tree.turn(parent))
            index = 0
            for spec in specs:
                for _ in range(spec.samples):
                    turn_id = ROOT_ID if parent is None else child_id(parent, index)
                    index += 1
                    if turn_id not in tree.graph:  # a resumed tree keeps the turns it has
                        jobs.append(_Job(tree, parent, turn_id, spec, self._request(tree, parent, turn_id, spec)))
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
        return ChatRequest(messages, agent.sampling, derive_seed(self.seed, tree.tree_id, turn_id))

    def _generate(self, jobs: list[_Job]) -> None:
        by_backend: dict[str, list[_Job]] = {}
        for job in jobs:
            if job.spec.fixed_text is not None:
                job.completion = Completion(job.spec.fixed_text, 0, 0, "fixed", 0.0)
                continue
            by_backend.setdefault(self.agents[job.spec.speaker].backend_key, []).append(job)
        for key, group in by_backend.items():
            completions = self.backends[key].generate([job.request for job in group])
            for job, completion in zip(group, completions, strict=True):
                job.completion = completion

    def _add_turns(self, jobs: list[_Job]) -> None:
        readings = self.judge.read_batch(
            [(job.completion.text, job.tree.question, job.completion.finish_reason == "length") for job in jobs]
        )
        for job, reading in zip(jobs, readings, strict=True):
            done = job.completion
            parent = job.tree.turn(job.parent) if job.parent is not None else None
            answer, agrees = agreement(reading, parent)
            agent = self.agents[job.spec.speaker]
            s = job.request.sampling
            gen = (
                None
                if job.spec.fixed_text is not None
                else GenInfo(
                    model=agent.model,
                    temperature=s.temperature,
                    top_p=s.top_p,
                    max_tokens=s.max_tokens,
                    seed=job.request.seed,
                    prompt_tokens=done.prompt_tokens,
                    completion_tokens=done.completion_tokens,
                    finish_reason=done.finish_reason,
                    latency_s=done.latency_s,
                    error=done.error,
                )
            )
            job.tree.add_turn(
                Turn(
                    id=job.turn_id,
                    parent=job.parent,
                    depth=0 if parent is None else parent.depth + 1,
                    speaker=job.spec.speaker,
                    instruction=job.spec.instruction,
                    text=done.text,
                    answer=answer,
                    correct=self.judge.is_correct(answer, job.tree.question),
                    agrees_with_parent=agrees,
                    parsed=_parsed(self.protocol.parse(job.spec, done.text), reading.problem),
                    gen=gen,
                )
            )
            self.stats.turns += 1
            if job.spec.fixed_text is not None or done.error is not None:  # failures are counted from the trees
                continue
            if done.cached:
                self.stats.cached_turns += 1
            else:
                self.stats.generated_tokens += done.completion_tokens


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


def _parsed(by_protocol: dict | None, by_judge: dict | None) -> dict | None:
    """What the protocol read from a turn, and why the judge read no answer from it, if so."""
    if by_protocol is None and by_judge is None:
        return None
    return {**(by_protocol or {}), **(by_judge or {})}
