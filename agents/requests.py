"""The one narrow interface between the dialogue engine and every backend.

A backend takes a list of `ChatRequest` and returns one `Completion` per request, in order.
Several samples of the same prompt are several requests with different seeds; requests that
share a prefix arrive next to each other so that an engine with prefix caching can reuse it.
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

    def to_dict(self) -> dict:
        return asdict(self)


class Backend(Protocol):
    """Serves one model. `model_id` identifies what it serves in caches and manifests."""

    model_id: str

    def generate(self, requests: list[ChatRequest]) -> list[Completion]: ...

    def close(self) -> None: ...


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
