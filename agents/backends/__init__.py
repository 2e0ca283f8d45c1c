"""Backends serve one model each behind `agents.requests.Backend`. `BACKENDS` is the one table of
them: everything else asks it what a backend can do, never its name. Engines are imported only
when selected, so the vLLM and HTTP dependencies are optional."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from agents.config import ScaleConfig
from agents.requests import Backend


@dataclass(frozen=True)
class BackendKind:
    """Everything the rest of the code may know about one kind of backend (`backend.type`)."""

    module: str  # where the class is, imported only when used
    cls: str
    takes_seed: bool  # its constructor takes the engine seed (vLLM on CPU cannot seed each request)
    local_weights: bool  # the model's weights and tokenizer load here; false: a server has them
    scores_in_process: bool = False  # exposes `.model` and `.tokenizer`, so log-probabilities reuse it
    # serves several LoRA adapters of the model it loads, side by side, each request naming its own
    serves_adapters: bool = False


BACKENDS = {
    "transformers": BackendKind(
        "agents.backends.transformers_backend",
        "TransformersBackend",
        False,
        True,
        scores_in_process=True,
        serves_adapters=True,
    ),
    "vllm": BackendKind("agents.backends.vllm_backend", "VllmBackend", True, True, serves_adapters=True),
    "openai": BackendKind("agents.backends.openai_backend", "OpenAIBackend", False, False),
}


def make_backend(
    model: str, config, seed: int = 0, scale: ScaleConfig | None = None, adapters: tuple[str, ...] = ()
) -> Backend:
    """`seed` is the engine seed of backends that cannot seed each request (vLLM on CPU).
    `scale`: copies of the backend in Ray actors, one per worker. `adapters`: LoRA directories of
    `model` served beside it (a kind that `serves_adapters`), requests naming theirs."""
    if scale is not None and scale.on_ray:
        from agents.backends.ray_backend import RayBackend

        return RayBackend(model, config, seed, scale, adapters)
    kind = BACKENDS[config.type]
    cls = getattr(importlib.import_module(kind.module), kind.cls)
    extra = {"adapters": adapters} if adapters else {}
    return cls(model, config, seed=seed, **extra) if kind.takes_seed else cls(model, config, **extra)
