"""Data parallelism over Ray: N actors, each holding one backend, behind the one streaming interface.

`scale.workers=N` (and `scale.address=auto` or a Ray address to join a cluster) puts a copy of
the backend in each of N Ray actors. A request goes to the actor its `affinity` (the tree it
belongs to) picks by rendezvous hashing, so a tree lives on one actor for its whole life and its
prefixes stay in that engine's cache. The driver keeps every request until its completion is
back: when an actor dies, its unfinished requests go to the actors left (rendezvous hashing
moves only the dead actor's trees), so no turn is lost. The driver stays the only writer of the
run directory; the actors only generate. Ray is imported only when `scale.workers` asks for it.
"""

from __future__ import annotations

import hashlib
import time

from agents.config import ScaleConfig
from agents.errors import AgoraError
from agents.requests import ChatRequest, Completion, Streaming


class _Worker:
    """Runs in a Ray actor: one backend, fed by the driver, stepped on the driver's demand."""

    def __init__(self, model: str, backend: dict, seed: int, adapters: tuple[str, ...]):
        from pydantic import TypeAdapter

        from agents.backends import make_backend
        from agents.config import BackendConfig

        config = TypeAdapter(BackendConfig).validate_python(backend)
        self.backend = make_backend(model, config, seed=seed, adapters=adapters)
        self.ours: dict[int, int] = {}  # the backend's ticket -> the driver's

    def ready(self) -> int:
        import os

        return os.getpid()

    def submit(self, tickets: list[int], requests: list[ChatRequest]) -> None:
        self.ours.update(zip(self.backend.submit(requests), tickets, strict=True))

    def step(self) -> list[tuple[int, Completion]]:
        """One step of the backend (a decoding step, or the next server reply)."""
        if not self.backend.busy():
            return []
        return [(self.ours.pop(theirs), done) for theirs, done in self.backend.step(wait=True)]

    def close(self) -> None:
        self.backend.close()


class RayBackend(Streaming):
    def __init__(self, model: str, backend, seed: int, scale: ScaleConfig, adapters: tuple[str, ...] = ()):
        super().__init__()
        import ray

        connect(scale)
        self.model_id = model
        self._ray = ray
        actor = ray.remote(_Worker).options(num_cpus=scale.cpus_per_worker, num_gpus=scale.gpus_per_worker)
        self.actors = [actor.remote(model, backend.model_dump(), seed, adapters) for _ in range(scale.workers)]
        try:
            ray.get([a.ready.remote() for a in self.actors])
        except ray.exceptions.RayError as e:
            self.close()
            raise AgoraError(f"scale.workers={scale.workers}: a Ray worker could not load {model}: {e}") from None
        self._alive = set(range(len(self.actors)))
        self._held: dict[int, tuple[int, ChatRequest]] = {}  # ticket -> (worker, request), until done
        self._stepping: dict[int, object] = {}  # worker -> its step call in flight

    def _route(self, affinity: str) -> int:
        """The alive worker with the highest hash for this tree: a dead worker's trees spread
        over the others, and no other tree moves."""
        return max(self._alive, key=lambda w: hashlib.sha256(f"{w}:{affinity}".encode()).digest())

    def _start(self, tickets: list[int], requests: list[ChatRequest]) -> None:
        by_worker: dict[int, list[tuple[int, ChatRequest]]] = {}
        for ticket, request in zip(tickets, requests, strict=True):
            by_worker.setdefault(self._route(request.affinity), []).append((ticket, request))
        for worker, items in by_worker.items():  # a tree's siblings stay together
            self._held.update({t: (worker, r) for t, r in items})
            self.actors[worker].submit.remote([t for t, _ in items], [r for _, r in items])

    def _working(self) -> bool:
        return bool(self._held)

    def _advance(self, wait: bool) -> list[tuple[int, Completion]]:
        ray = self._ray
        busy = {worker for worker, _ in self._held.values()}
        for worker in busy - set(self._stepping):
            self._stepping[worker] = self.actors[worker].step.remote()
        # several Ray backends (or local ones) may share the engine's loop: a short wait, not none
        ready, _ = ray.wait(list(self._stepping.values()), num_returns=1, timeout=None if wait else 0.01)
        finished: list[tuple[int, Completion]] = []
        for worker, call in list(self._stepping.items()):
            if call not in ready:
                continue
            del self._stepping[worker]
            try:
                done = ray.get(call)
            except ray.exceptions.RayActorError:
                self._lost(worker)
                continue
            for ticket, completion in done:
                del self._held[ticket]
                finished.append((ticket, completion))
        return finished

    def _lost(self, worker: int) -> None:
        """A dead worker's requests go to the workers left."""
        self._alive.discard(worker)
        if not self._alive:
            raise AgoraError(f"every Ray worker serving {self.model_id} died; run the same command again to resume")
        orphans = [(t, r) for t, (w, r) in self._held.items() if w == worker]
        for t, _ in orphans:
            del self._held[t]
        if orphans:
            self._start([t for t, _ in orphans], [r for _, r in orphans])

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors = []


def connect(scale: ScaleConfig) -> None:
    """Join the Ray cluster at `scale.address`, or start a local one (once per process)."""
    import ray

    if not ray.is_initialized():
        started = time.perf_counter()
        ray.init(address=scale.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        where = f"joined {scale.address}" if scale.address else "started a local instance"
        print(f"ray: {where} ({time.perf_counter() - started:.0f}s)")
