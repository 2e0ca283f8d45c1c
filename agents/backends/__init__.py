"""Backends serve one model each behind `agents.requests.Backend`. Engines are imported only
when selected, so the vLLM and HTTP dependencies are optional."""

from __future__ import annotations

from agents.config import OpenAIBackendConfig, ScaleConfig, TransformersBackendConfig, VllmBackendConfig
from agents.requests import Backend


def make_backend(model: str, config, seed: int = 0, scale: ScaleConfig | None = None) -> Backend:
    """`seed` is the engine seed of backends that cannot seed each request (vLLM on CPU).
    `scale`: copies of the backend in Ray actors, one per worker."""
    if scale is not None and scale.on_ray:
        from agents.backends.ray_backend import RayBackend

        return RayBackend(model, config, seed, scale)
    if isinstance(config, TransformersBackendConfig):
        from agents.backends.transformers_backend import TransformersBackend

        return TransformersBackend(model, config)
    if isinstance(config, VllmBackendConfig):
        from agents.backends.vllm_backend import VllmBackend

        return VllmBackend(model, config, seed=seed)
    if isinstance(config, OpenAIBackendConfig):
        from agents.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(model, config)
    raise TypeError(f"no backend for {config!r}")
