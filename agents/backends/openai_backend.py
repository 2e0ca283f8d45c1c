"""Any OpenAI-compatible chat server: `vllm serve`, SGLang, llama.cpp's server, hosted APIs.

Requests run concurrently up to `max_concurrency`. A 429, a 5xx, a timeout or a dropped
connection is retried with exponential backoff (honouring Retry-After); a request that still
fails comes back as a Completion with `finish_reason="error"` and the reason, so the run records
it on the turn and goes on; so does an HTTP 200 whose body is not a chat completion. The API key
is read from the environment variable named in the config and sent only in the Authorization
header; error texts are stored with the key and any bearer token redacted, since a server's
error body may echo the request's headers.
"""

from __future__ import annotations

import asyncio
import os
import re
import time

import httpx

from agents.config import OpenAIBackendConfig
from agents.requests import ChatRequest, Completion

RETRYABLE = {408, 409, 425, 429}


class OpenAIBackend:
    def __init__(self, model: str, config: OpenAIBackendConfig | None = None):
        self.model_id = model
        self.config = config or OpenAIBackendConfig()

    def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        return asyncio.run(self._generate_all(requests))

    async def _generate_all(self, requests: list[ChatRequest]) -> list[Completion]:
        headers = {}
        key = os.environ.get(self.config.api_key_env) if self.config.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        limit = asyncio.Semaphore(self.config.max_concurrency)
        async with httpx.AsyncClient(
            base_url=self.config.base_url.rstrip("/"), headers=headers, timeout=self.config.timeout_s
        ) as client:
            done = await asyncio.gather(*(self._one(client, limit, r) for r in requests))
        for completion in done:  # an error body can echo the request's headers: the key goes
            if completion.error is not None:
                completion.error = redact(completion.error, key)
        return done

    async def _one(self, client: httpx.AsyncClient, limit: asyncio.Semaphore, request: ChatRequest) -> Completion:
        body = {
            "model": self.model_id,
            "messages": request.chat(),
            "temperature": request.sampling.temperature,
            "top_p": request.sampling.top_p,
            "max_tokens": request.sampling.max_tokens,
        }
        if self.config.send_seed:
            body["seed"] = request.seed
        started = time.perf_counter()
        error = "no attempt made"
        for attempt in range(self.config.max_retries + 1):
            delay = self.config.backoff_s * 2**attempt
            async with limit:
                try:
                    response = await client.post("/chat/completions", json=body)
                except httpx.TimeoutException:
                    error = f"timed out after {self.config.timeout_s}s"
                    response = None
                except httpx.TransportError as e:
                    error = f"connection failed: {type(e).__name__}"
                    response = None
            if response is not None and response.status_code == 200:
                try:
                    return _completion(response.json(), time.perf_counter() - started)
                except (ValueError, LookupError, TypeError, AttributeError) as e:  # not the wire format
                    error = (
                        f"HTTP 200 with a body that is not a chat completion ({type(e).__name__}): "
                        f"{response.text[:200]}"
                    )
            elif response is not None:
                error = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in RETRYABLE and response.status_code < 500:
                    break  # a bad request stays bad
                retry_after = response.headers.get("retry-after", "")
                if retry_after.replace(".", "", 1).isdigit():
                    delay = max(delay, float(retry_after))
            if attempt < self.config.max_retries:
                await asyncio.sleep(delay)
        return Completion(
            text="",
            prompt_tokens=0,
            completion_tokens=0,
            finish_reason="error",
            latency_s=time.perf_counter() - started,
            error=f"{error} (after {attempt + 1} attempts)",
        )

    def close(self) -> None:
        pass


def redact(text: str, key: str | None) -> str:
    """`text` without the API key and without any bearer token."""
    if key:
        text = text.replace(key, "[redacted]")
    return re.sub(r"(?i)(bearer)\s+[^\s\"',}]+", r"\1 [redacted]", text)


def _completion(data: dict, latency: float) -> Completion:
    choice = data["choices"][0]
    usage = data.get("usage") or {}
    return Completion(
        text=(choice["message"].get("content") or "").strip(),
        prompt_tokens=usage.get("prompt_tokens", 0),
        completion_tokens=usage.get("completion_tokens", 0),
        finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        latency_s=latency,
    )
