"""Validated configuration of agents and backends (the `agent/` and `backend/` config groups)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.requests import Sampling

# How a process verifier reads a solution (agents/scoring.py): each step followed by the separator,
# and at its last token the logits of the good and the bad token. trainer=prm and suite=verifier
# both start from these.
STEP_SEPARATOR, GOOD_TOKEN, BAD_TOKEN = "\n", "+", "-"


class Strict(BaseModel):
    """Unknown keys are errors, so a misspelt key fails before any model loads."""

    model_config = ConfigDict(extra="forbid")


def one_of(name: str, table: dict, what: str) -> str:
    """`name` if it is a key of `table` (a registry: miners, trainers, suites), else an error
    that lists them; for a pydantic validator."""
    if name not in table:
        raise ValueError(f"unknown {what} '{name}' (one of {', '.join(table)})")
    return name


class SamplingConfig(Strict):
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1)

    def to_sampling(self) -> Sampling:
        return Sampling(self.temperature, self.top_p, self.max_tokens)


class TransformersBackendConfig(Strict):
    type: Literal["transformers"] = "transformers"
    device: str = "auto"  # "auto" takes cuda when available
    dtype: str = "auto"  # "auto": bfloat16 on GPU and on CPUs that compute in it natively, else float32
    batch_size: int = Field(32, ge=1)


class VllmBackendConfig(Strict):
    type: Literal["vllm"] = "vllm"
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.85, gt=0.0, le=1.0)
    max_model_len: int | None = 4096
    enable_prefix_caching: bool = True
    # The CPU build rejects per-request seeds; null means "per request on GPU, engine seed on CPU".
    per_request_seed: bool | None = None
    dtype: str = "auto"
    engine_kwargs: dict = Field(default_factory=dict)  # passed to vllm.LLM as they are


class OpenAIBackendConfig(Strict):
    type: Literal["openai"] = "openai"
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str | None = "OPENAI_API_KEY"  # the variable's name; the key is never stored
    max_concurrency: int = Field(16, ge=1)
    max_retries: int = Field(5, ge=0)
    timeout_s: float = Field(120.0, gt=0)
    backoff_s: float = Field(1.0, ge=0)  # first retry delay; doubles each retry
    send_seed: bool = True


BackendConfig = Annotated[
    TransformersBackendConfig | VllmBackendConfig | OpenAIBackendConfig, Field(discriminator="type")
]


class ScaleConfig(Strict):
    """Where backends run: in this process (workers=1, no address), or in Ray actors."""

    workers: int = Field(1, ge=1)  # Ray actors, each with a copy of every backend the run needs
    address: str | None = None  # a Ray cluster to join ("auto", "ray://host:10001"); null: a local one
    cpus_per_worker: float = Field(1.0, ge=0)
    gpus_per_worker: float = Field(0.0, ge=0)  # tensor parallel inside a worker: backend.tensor_parallel_size

    @property
    def on_ray(self) -> bool:
        return self.workers > 1 or self.address is not None


class AgentConfig(Strict):
    model: str
    persona: str = "neutral"  # a file name in conf/persona/
    sampling: SamplingConfig = SamplingConfig()
    backend: BackendConfig | None = None  # null: the run's top-level `backend`
