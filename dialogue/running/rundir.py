"""The run directory: manifest.json, trees.jsonl and gen_cache.sqlite, written by one process.

One writer: `RunDir.writing()` holds an OS lock on the directory (`.lock`) for as long as a
command writes there; a second `agora simulate`, `replay` or evaluation started into the same
directory stops at once, naming the process that holds it. The kernel releases the lock when its
holder exits or is killed, so a killed run leaves no stale lock.

A tree is appended to trees.jsonl as one whole line, flushed and synced, as soon as it stops
growing. A tree with a failed turn (a request that errored) is written too, with the failed turn
recorded on it; running the same command again removes the failed turns and regrows exactly
those branches, appending the tree again: a later line of a tree supersedes an earlier one, and
`finish` compacts the file to one line per tree once nothing failed. The manifest says
`"status": "complete"` only after the last tree is written with no failed turn; otherwise
`"incomplete"`, with the count, so a killed or failed run never looks finished.

Every tree records the hash of the config that grew it, so a directory whose manifest was lost
still refuses to be finished under another config.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import networkx as nx

from agents.errors import AgoraError
from agents.files import write_atomic
from dialogue.core.tree import DialogueTree


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def failed_turns(tree: DialogueTree) -> list[str]:
    """The ids of the turns whose request failed."""
    return [t.id for t in tree.turns() if t.gen is not None and t.gen.error is not None]


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.manifest_path = self.path / "manifest.json"
        self.trees_path = self.path / "trees.jsonl"
        self.cache_path = self.path / "gen_cache.sqlite"

    def writing(self):
        """Hold the directory's lock while writing it; fail at once if another process holds it."""
        return one_writer(self.path)

    def manifest(self) -> dict | None:
        if not self.manifest_path.exists():
            return None
        return json.loads(self.manifest_path.read_text())

    def begin(self, manifest: dict) -> None:
        """Start or resume. Resuming with a different config would mix two experiments."""
        previous = self.manifest()
        config = manifest.get("config")
        if previous is not None:
            if previous.get("config") != config:
                keys = ", ".join(differing_keys(previous.get("config") or {}, config or {})) or "(config)"
                raise AgoraError(
                    f"{self.manifest_path}: this run directory holds a run with another config "
                    f"(differing: {keys}); choose a new out=DIR"
                )
            manifest = {**previous, "status": "running", "resumed_at": [*previous.get("resumed_at", []), now()]}
        else:
            grown = {t.graph.graph.get("config_hash") for t in self.trees()} - {None}  # one tree at a time
            if grown and grown != {config_hash(config)}:
                raise AgoraError(
                    f"{self.path}: trees.jsonl holds trees grown under another config (hash "
                    f"{', '.join(sorted(grown))}, this config's is {config_hash(config)}) and the "
                    "manifest.json that recorded it is gone; choose a new out=DIR"
                )
            manifest = {**manifest, "status": "running", "started_at": now(), "finished_at": None}
        self._write_manifest(manifest)

    def finish(self, counts: dict) -> str:
        """Record the counts; the run is complete only when no turn failed (`counts["failed_turns"]`)."""
        status = "complete" if not counts.get("failed_turns") else "incomplete"
        if status == "complete":
            self._compact()
        manifest = self.manifest() or {}
        self._write_manifest({**manifest, "status": status, "finished_at": now(), "counts": counts})
        return status

    def _write_manifest(self, manifest: dict) -> None:
        # Write beside and rename: a reader never sees half a manifest.
        write_atomic(self.manifest_path, json.dumps(manifest, indent=2, default=str))

    def append(self, tree: DialogueTree) -> None:
        line = json.dumps(tree.to_json(), ensure_ascii=False) + "\n"
        self._drop_torn_tail()
        with self.trees_path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def _drop_torn_tail(self) -> None:
        """A kill in the middle of an append leaves a last line without its newline: drop it."""
        if not self.trees_path.exists():
            return
        with self.trees_path.open("rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def _compact(self) -> None:
        """One line per tree, its last version: rewritten beside and renamed, never torn."""
        if not self.trees_path.exists():
            return
        index, lines = self._index()
        if lines != len(index):
            with self.trees_path.open(encoding="utf-8") as f:
                kept = [line for line_no, line in enumerate(f, start=1) if line_no in index]
            write_atomic(self.trees_path, "".join(kept))

    def trees(self, bad_lines: list[str] | None = None) -> Iterator[DialogueTree]:
        """Every tree's last version, read one at a time, in the order the trees first appear. A
        line that is not a whole dialogue tree is an error naming the file and line, or, when
        `bad_lines` is a list, is reported there and skipped."""
        if not self.trees_path.exists():
            return
        index, _ = self._index(bad_lines)
        with self.trees_path.open("rb") as f:
            for offset, _ in sorted(index.values(), key=lambda entry: entry[1]):
                f.seek(offset)
                yield DialogueTree.from_json(json.loads(f.readline()))

    def trees_by_id(self, bad_lines: list[str] | None = None) -> dict[str, DialogueTree]:
        return {tree.tree_id: tree for tree in self.trees(bad_lines)}

    def _index(self, bad_lines: list[str] | None = None) -> tuple[dict[int, tuple[int, int]], int]:
        """{line number of each tree's last version: (its byte offset, the line where the tree
        first appears)}, and how many lines hold a tree. Checks every line, holding none."""
        last: dict[str, int] = {}  # tree id -> line number of its latest version
        where: dict[int, tuple[int, int]] = {}
        first: dict[str, int] = {}
        lines = 0
        with self.trees_path.open("rb") as f:
            line_no, offset = 0, 0
            for raw in f:
                line_no += 1
                start, offset = offset, offset + len(raw)
                if not raw.strip():
                    continue
                try:
                    tree = DialogueTree.from_json(json.loads(raw))
                    tree.question, tree.turns()  # every node must be a valid turn
                except (UnicodeDecodeError, KeyError, TypeError, ValueError, nx.NetworkXError) as e:
                    if not raw.endswith(b"\n"):
                        continue  # a torn last line: the next append drops it
                    problem = f"{self.trees_path}:{line_no}: not a dialogue tree ({_first_line(e)})"
                    if bad_lines is None:
                        raise AgoraError(problem) from e
                    bad_lines.append(problem)
                    continue
                lines += 1
                if tree.tree_id in last:
                    del where[last[tree.tree_id]]
                first.setdefault(tree.tree_id, line_no)
                last[tree.tree_id] = line_no
                where[line_no] = (start, first[tree.tree_id])
        return where, lines


@contextmanager
def one_writer(path: Path, key: str = "out") -> Iterator[None]:
    """Create `path` if needed and hold an exclusive OS lock on it (`path/.lock`) while the
    caller writes there; another process that asks fails at once, told which process holds it.
    The kernel releases the lock when its holder exits or is killed."""
    make_directory(path, key)
    fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise AgoraError(
            f"{path}: another agora process (pid {holder}) is writing this directory; wait for it "
            f"to finish, or choose another {key}=DIR"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock


def differing_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested dicts."""
    keys = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        nested = {type(x), type(y)} <= {dict, type(None)} and dict in {type(x), type(y)}
        if nested:  # a side without the key has none of its keys
            keys += differing_keys(x or {}, y or {}, f"{prefix}{key}.")
        elif x != y:
            keys.append(f"{prefix}{key}")
    return keys


def check_writable(path: Path, key: str = "out") -> None:
    """Fail, naming the key, the path and why, when an output directory cannot be made or
    written there: it is a file, or the nearest folder that exists is read-only to this user."""
    if path.exists() and not path.is_dir():
        raise AgoraError(f"{key}={path}: is a file, not a directory")
    existing = next(p for p in [path, *path.parents] if p.exists())
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        raise AgoraError(f"{key}={path}: cannot write there (a read-only file system)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise AgoraError(f"{key}={path}: cannot write there (no permission to write in {existing})")


def make_directory(path: Path, key: str) -> None:
    """Create an output directory, or fail naming the key, the path and why."""
    check_writable(path, key)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        why = "a read-only file system" if e.errno == errno.EROFS else e.strerror
        raise AgoraError(f"{key}={path}: cannot write there ({why})") from None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
