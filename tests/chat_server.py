"""A scripted OpenAI-compatible chat server on 127.0.0.1, for tests of failures.

`vllm serve` cannot be made to answer 429, hang, send a broken body or echo a header on demand,
so these tests run a server of their own that speaks the chat-completions wire format and
misbehaves as told. The backend against the real `vllm serve` is in test_vllm.py.

Every reply is a function of the request alone (`reply(body)`), so a run's trees do not depend
on which requests failed or in which order they arrived.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def skeptic_says_b(body: dict) -> str:
    """ "Answer: B" to an agent whose system message calls it a skeptic, "Answer: A" to anyone else."""
    return "Answer: B" if "skeptic" in body["messages"][0]["content"] else "Answer: A"


def hashed_letter(body: dict) -> str:
    """A letter drawn from the request's messages and seed: varied, and the same every time."""
    key = json.dumps([body["messages"], body.get("seed")], sort_keys=True).encode()
    return f"I have thought about it. Answer: {'ABCD'[hashlib.sha256(key).digest()[0] % 4]}"


BAD_BODIES = {
    "not json": b"<html>upstream error</html>",
    "no choices": b'{"choices": [], "usage": {}}',
    "no message": b'{"choices": [{"finish_reason": "stop"}]}',
}


class ChatServer:
    def __init__(self, reply: Callable[[dict], str] = skeptic_says_b, delay_s: float = 0.0):
        self.reply = reply
        self.delay_s = delay_s
        self.plan: list[tuple[int, float]] = []  # (status, delay) for the next requests, in order
        self.fail_when: Callable[[dict], bool] = lambda body: False  # 500 for these requests
        self.fail_fraction = 0.0  # 500 for this fraction of all requests, drawn from `rng`
        self.bad_body: str | None = None  # a key of BAD_BODIES: every 200 carries that body
        self.echo_auth = False  # error bodies repeat the request's Authorization header
        self.error_body: Callable[[str | None], str] | None = None  # the Authorization header -> an error body
        self.context_length: int | None = None  # refuse longer requests, as vLLM does (400)
        self.gate = threading.Event()  # requests wait until it is set
        self.gate.set()
        self.rng = random.Random(0)
        self.seen: list[dict] = []
        self.auth: list[str | None] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                auth = self.headers.get("Authorization")
                with server.lock:
                    server.seen.append(body)
                    server.auth.append(auth)
                    status, delay = server.plan.pop(0) if server.plan else (200, server.delay_s)
                    if server.fail_when(body) or server.rng.random() < server.fail_fraction:
                        status = 500
                server.gate.wait(timeout=60)
                time.sleep(delay)
                words = sum(len(m["content"].split()) for m in body["messages"])
                if server.context_length and words + body["max_tokens"] > server.context_length:
                    status = 400
                    wanted = words + body["max_tokens"]
                    message = (
                        f"This model's maximum context length is {server.context_length} tokens. However, you "
                        f"requested {wanted} tokens ({words} in the messages, {body['max_tokens']} in the completion)."
                    )
                    payload = json.dumps({"error": {"message": message}}).encode()
                elif status != 200 and server.error_body is not None:
                    payload = server.error_body(auth).encode()
                elif status != 200:
                    echoed = f', "authorization": "{auth}"' if server.echo_auth else ""
                    payload = ('{"error": "injected"' + echoed + "}").encode()
                elif server.bad_body:
                    payload = BAD_BODIES[server.bad_body]
                else:
                    payload = json.dumps(
                        {
                            "choices": [
                                {
                                    "message": {"role": "assistant", "content": server.reply(body)},
                                    "finish_reason": "stop",
                                }
                            ],
                            "usage": {"prompt_tokens": words, "completion_tokens": 3},
                        }
                    ).encode()
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the backend opens up to max_concurrency connections at once
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client killed mid-request (the fault tests do that) is no error of the server's
