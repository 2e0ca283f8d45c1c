"""The one narrow interface between the dialogue engine and every backend.

A backend takes `ChatRequest`s and returns one `Completion` for each, as they finish (`submit`
and `step`) or as a whole batch (`generate`). Several samples of the same prompt are several
requests with different seeds; requests that share a prefix are submitted together so that an
engine with prefix caching can reuse it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 256


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[tuple[str, str], ...]  # (role, content) pairs, hashable for grouping
    sampling: Sampling
    seed: int
    affinity: str = ""  # what the request belongs to (its tree): requests with one affinity stay on one replica
    # the LoRA adapter (its directory) to generate with, on a backend that serves several adapters
    # of its base model side by side; empty: the backend's own model
    adapter: str = ""

    def chat(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop", "length", "error", or "fixed" for a turn whose text was given
    latency_s: float
    error: str | None = None
    cached: bool = False  # served from the generation cache, not generated now
    # prompt tokens the backend read from KV it had computed already (its prefix cache, or the
    # shared prompt of siblings admitted together) instead of computing them again
    prefix_hit_tokens: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class Backend(Protocol):
    """Serves one model. `model_id` identifies what it serves in caches and manifests.

    Requests stream through it: `submit` hands them over and returns a ticket for each, `step`
    advances the work (one decoding step of an in-process engine, or a wait for the next reply
    of a server) and returns the (ticket, completion) pairs finished since the last call, so a
    caller can send a turn's children while the rest of its batch is still generating. Requests
    submitted in one call are siblings kept together for prefix caching. `generate` is submit
    and wait, for callers that want a whole batch back."""

    model_id: str

    def submit(self, requests: list[ChatRequest]) -> list[int]: ...

    def step(self, wait: bool = True) -> list[tuple[int, Completion]]: ...

    def busy(self) -> bool: ...

    def generate(self, requests: list[ChatRequest]) -> list[Completion]: ...

    def close(self) -> None: ...


class Streaming:
    """What every backend shares: tickets, completions held until handed out, and `generate`.

    A backend implements `_start(tickets, requests)` (take the requests; a request that fails at
    once goes to `self._ready`), `_advance(wait)` (do the next piece of work and return what
    finished; with `wait`, a backend whose work happens elsewhere blocks until something does)
    and `_working()` (whether anything is in progress)."""

    def __init__(self) -> None:
        self._tickets = 0
        self._ready: list[tuple[int, Completion]] = []  # finished, not yet handed out

    def submit(self, requests: list[ChatRequest]) -> list[int]:
        tickets = list(range(self._tickets, self._tickets + len(requests)))
        self._tickets += len(requests)
        if requests:
            self._start(tickets, requests)
        return tickets

    def step(self, wait: bool = True) -> list[tuple[int, Completion]]:
        done, self._ready = self._ready, []
        if self._working():
            done += self._advance(wait and not done)
        return done

    def busy(self) -> bool:
        return bool(self._ready) or self._working()

    def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        """The completions of `requests`, in order. Others that finish meanwhile (a caller in
        the middle of a stream) are kept for its next `step`."""
        tickets = self.submit(requests)
        wanted: set[int] = set(tickets)
        got: dict[int, Completion] = {}
        pairs, self._ready = self._ready, []
        while True:
            for ticket, completion in pairs:
                if ticket in wanted:
                    got[ticket] = completion
                else:
                    self._ready.append((ticket, completion))
            if len(got) == len(tickets):
                return [got[t] for t in tickets]
            pairs = self._advance(True)

    def _start(self, tickets: list[int], requests: list[ChatRequest]) -> None:
        raise NotImplementedError

    def _advance(self, wait: bool) -> list[tuple[int, Completion]]:
        raise NotImplementedError

    def _working(self) -> bool:
        raise NotImplementedError


def too_long(prompt_tokens: int, max_tokens: int, context: int | None) -> Completion | None:
    """A failed completion for a request that cannot fit the model's context, or None if it fits."""
    if context is None or prompt_tokens + max_tokens <= context:
        return None
    return Completion(
        "",
        prompt_tokens,
        0,
        "error",
        0.0,
        error=(
            f"the prompt has {prompt_tokens} tokens and max_tokens is {max_tokens}, {prompt_tokens + max_tokens} in "
            f"all: more than the model's context of {context} tokens (dataset.max_prompt_tokens drops such questions)"
        ),
    )
