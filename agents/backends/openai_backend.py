"""Any OpenAI-compatible chat server: `vllm serve`, SGLang, llama.cpp's server, hosted APIs.

Requests run concurrently up to `max_concurrency`, on an event loop of the backend's own, so
they are in flight while the engine reads replies and sends the next turns. A 429, a 5xx, a timeout or a dropped
connection is retried with exponential backoff (honouring Retry-After); a request that still
fails comes back as a Completion with `finish_reason="error"` and the reason, so the run records
it on the turn and goes on; so does an HTTP 200 whose body is not a chat completion. The API key
is read from the environment variable named in the config and sent only in the Authorization
header; error texts are stored with the key and any bearer token redacted, since a server's
error body may echo the request's headers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import re
import threading
import time

import httpx

from agents.config import OpenAIBackendConfig
from agents.requests import ChatRequest, Completion, Streaming

RETRYABLE = {408, 409, 425, 429}

# httpx logs every request at INFO, which Hydra's logging shows: one line per turn on the console
logging.getLogger("httpx").setLevel(logging.WARNING)


class OpenAIBackend(Streaming):
    """Requests are sent from an event loop on a thread of its own, so they are in flight while
    the caller goes on; `step` hands back the replies that have arrived."""

    def __init__(self, model: str, config: OpenAIBackendConfig | None = None):
        super().__init__()
        self.model_id = model
        self.config = config or OpenAIBackendConfig()
        self._key = os.environ.get(self.config.api_key_env) if self.config.api_key_env else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: httpx.AsyncClient | None = None
        self._limit: asyncio.Semaphore | None = None
        self._in_flight: dict[concurrent.futures.Future, int] = {}  # reply -> ticket

    def _start(self, tickets: list[int], requests: list[ChatRequest]) -> None:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="agora-openai", daemon=True)
            self._thread.start()
        for ticket, request in zip(tickets, requests, strict=True):
            self._in_flight[asyncio.run_coroutine_threadsafe(self._one(request), self._loop)] = ticket

    def _working(self) -> bool:
        return bool(self._in_flight)

    def _advance(self, wait: bool) -> list[tuple[int, Completion]]:
        done, _ = concurrent.futures.wait(
            self._in_flight, timeout=None if wait else 0, return_when=concurrent.futures.FIRST_COMPLETED
        )
        finished = []
        for future in done:
            completion = future.result()
            if completion.error is not None:  # an error body can echo the request's headers: the key goes
                completion.error = redact(completion.error, self._key)
            finished.append((self._in_flight.pop(future), completion))
        return finished

    async def _session(self) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        if self._client is None:  # made on the loop's thread, which they belong to
            headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
            self._client = httpx.AsyncClient(
                base_url=self.config.base_url.rstrip("/"), headers=headers, timeout=self.config.timeout_s
            )
            self._limit = asyncio.Semaphore(self.config.max_concurrency)
        return self._client, self._limit

    async def _one(self, request: ChatRequest) -> Completion:
        client, limit = await self._session()
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
                        f"{redact(response.text, self._key)[:200]}"
                    )
            elif response is not None:
                # redacted before it is cut: a key across the cut would leave its first characters
                error = f"HTTP {response.status_code}: {redact(response.text, self._key)[:300]}"
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
        if self._loop is None:
            return
        if self._client is not None:
            asyncio.run_coroutine_threadsafe(self._client.aclose(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._loop = None


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
        # servers that report it (vLLM with --enable-prompt-tokens-details, OpenAI itself)
        prefix_hit_tokens=(usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0,
    )
