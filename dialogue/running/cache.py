"""The generation cache: every completion in SQLite, keyed by what determines it.

The key hashes (model id, messages, sampling parameters, seed); each sample of a turn has its
own seed, derived from the run seed, the tree and the turn id, so the sample index is part of
it. A resumed or replayed run takes cached completions instead of generating them again.
Failed requests are not stored, so a later run retries them.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import replace
from pathlib import Path

from agents.errors import AgoraError
from agents.files import make_readable
from agents.requests import Backend, ChatRequest, Completion, Streaming


def request_key(model_id: str, request: ChatRequest) -> str:
    s = request.sampling
    payload = [model_id, request.messages, [s.temperature, s.top_p, s.max_tokens], request.seed]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


class GenerationCache:
    def __init__(self, path: str | Path):
        self.path = path
        self.db = sqlite3.connect(str(path))
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            # no disk flush per commit: a power loss can lose the last completions, never corrupt
            # the file, and a lost completion is generated again
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, completion TEXT NOT NULL)")
            self.db.commit()
            make_readable(Path(path))  # SQLite creates its files 0644 whatever the umask allows
        except sqlite3.DatabaseError as e:
            self.db.close()
            if _no_room(e):
                raise _full(path, e) from None
            raise AgoraError(
                f"{path}: the generation cache is not a usable SQLite database ({e}); move it aside "
                "or delete it and run again: the trees already written are kept, and only the "
                "completions it held are generated again"
            ) from None

    def get_many(self, keys: list[str]) -> dict[str, Completion]:
        found: dict[str, Completion] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):  # SQLite limits bound parameters per query
            chunk = unique[start : start + 500]
            rows = self.db.execute(
                f"SELECT key, completion FROM completions WHERE key IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            found.update({key: Completion(**json.loads(value)) for key, value in rows})
        return found

    def put_many(self, items: dict[str, Completion]) -> None:
        if not items:
            return
        try:
            self.db.executemany(
                "INSERT OR REPLACE INTO completions VALUES (?, ?)",
                [(key, json.dumps(vars(c))) for key, c in items.items()],  # vars: asdict copies deeply
            )
            self.db.commit()
        except sqlite3.OperationalError as e:
            if not _no_room(e):
                raise
            raise _full(self.path, e) from None

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        self.db.close()


class CachedBackend(Streaming):
    """A backend that answers from the cache first and stores what it had to generate."""

    def __init__(self, backend: Backend, cache: GenerationCache, cache_id: str):
        super().__init__()
        self.backend = backend
        self.cache = cache
        self.cache_id = cache_id  # backend kind and model, e.g. "transformers:smollm2-135m"
        self.kind = cache_id.split(":", 1)[0]
        self.model_id = backend.model_id
        self._asked: dict[int, tuple[int, str]] = {}  # the backend's ticket -> (ours, cache key)

    def _start(self, tickets: list[int], requests: list[ChatRequest]) -> None:
        # a request for an adapter is keyed by the adapter as if it were the model, so it finds its
        # completions whether the adapter was served alone (merged) or beside others
        keys = [request_key(f"{self.kind}:{r.adapter}" if r.adapter else self.cache_id, r) for r in requests]
        cached = self.cache.get_many(keys)
        self._ready += [(t, replace(cached[k], cached=True)) for t, k in zip(tickets, keys, strict=True) if k in cached]
        missing = [i for i, k in enumerate(keys) if k not in cached]
        asked = self.backend.submit([requests[i] for i in missing])
        self._asked.update({theirs: (tickets[i], keys[i]) for theirs, i in zip(asked, missing, strict=True)})

    def _working(self) -> bool:
        return bool(self._asked)

    def _advance(self, wait: bool) -> list[tuple[int, Completion]]:
        finished = [(*self._asked.pop(theirs), c) for theirs, c in self.backend.step(wait)]
        self.cache.put_many({key: c for _, key, c in finished if c.error is None})
        return [(ours, c) for ours, _, c in finished]

    def close(self) -> None:
        self.backend.close()


def _no_room(error: sqlite3.Error) -> bool:
    """SQLite could not grow its files: a full disk, a quota or a file size limit (it reports the
    last as an I/O error)."""
    name = getattr(error, "sqlite_errorname", "") or ""
    return name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR")


def _full(path, error: sqlite3.Error) -> AgoraError:
    return AgoraError(
        f"{path}: the generation cache could not be written ({error}; is the disk full?); the trees "
        "written before are kept. Free some space and run the same command again"
    )
