"""The run directory: manifest.json, trees.jsonl and gen_cache.sqlite, written by one process.

One writer: `RunDir.writing()` holds an OS lock on the directory (`.lock`) for as long as a
command writes there; a second `agora simulate`, `replay` or evaluation started into the same
directory stops at once, naming the process that holds it. The kernel releases the lock when its
holder exits or is killed, so a killed run leaves no stale lock.

A tree is appended to trees.jsonl as one whole line, flushed to the kernel, as soon as it stops
growing: a killed process loses no tree it appended. The file is synced to disk every
`SYNC_EVERY` trees or `SYNC_SECONDS`, and always before the manifest is written, so a power loss
can lose only the trees of the last unsynced group, which the same command grows again: syncing
each tree would cost a disk flush per tree.

A tree with a failed turn (a request that errored) is written too, with the failed turn
recorded on it; running the same command again removes the failed turns and regrows exactly
those branches, appending the tree again: a later line of a tree supersedes an earlier one, and
`finish` compacts the file to one line per tree once nothing failed. The manifest says
`"status": "complete"` only after the last tree is written with no failed turn; otherwise
`"incomplete"`, with the count, so a killed or failed run never looks finished.

Every tree records the hash of the config that grew it, so a directory whose manifest was lost
still refuses to be finished under another config.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import networkx as nx

from agents.errors import AgoraError
from agents.files import DISK_FULL, write_atomic
from dialogue.core.tree import DialogueTree
from dialogue.records import RunManifest, UnreadableRecord, tree_from_line, tree_line
from dialogue.running.config import config_of


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def failed_turns(tree: DialogueTree) -> list[str]:
    """The ids of the turns whose request failed."""
    return [t.id for t in tree.turns() if t.failed]


SYNC_EVERY = 64  # trees appended between two syncs of trees.jsonl
SYNC_SECONDS = 2.0


def _as_read_today(manifest: RunManifest) -> dict:
    """A run's config with the defaults of options added since it was made: a run started before
    an option existed resumes under that option's default (any other value is a change)."""
    try:
        return config_of(manifest.run_config())
    except ValueError:  # a config today's code no longer reads: compared as it was written
        return manifest.config


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.manifest_path = self.path / "manifest.json"
        self.trees_path = self.path / "trees.jsonl"
        self.cache_path = self.path / "gen_cache.sqlite"
        self._out = None  # trees.jsonl, open for appending while this process writes
        self._unsynced, self._synced_at = 0, 0.0
        # how many lines hold each tree, when every line of trees.jsonl passed through this object
        self._lines: dict[str, int] | None = None

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the directory's lock while writing it; fail at once if another process holds it.
        What was appended is synced to disk when the writing ends, however it ends."""
        with one_writer(self.path):
            try:
                yield
            finally:
                self._close()

    def manifest(self) -> RunManifest | None:
        if not self.manifest_path.exists():
            return None
        try:
            return RunManifest.read(self.manifest_path)
        except UnreadableRecord as e:
            raise AgoraError(
                f"{e}. The trees are kept apart from it: move it aside and run the same command again, "
                "which writes it anew (each tree records the hash of its config)"
            ) from None

    def begin(self, manifest: RunManifest) -> None:
        """Start or resume. Resuming with a different config would mix two experiments."""
        previous = self.manifest()
        config = manifest.config
        if previous is not None:
            if previous.config != config and (before := _as_read_today(previous)) != config:
                keys = ", ".join(differing_keys(before, config)) or "(config)"
                raise AgoraError(
                    f"{self.manifest_path}: this run directory holds a run with another config "
                    f"(differing: {keys}); choose a new out=DIR"
                )
            before, now_read = previous.dataset, manifest.dataset
            if before and now_read and before.sha256 and now_read.sha256 and before.sha256 != now_read.sha256:
                raise AgoraError(
                    f"{self.manifest_path}: the question file {now_read.source} changed since this run began "
                    f"(sha256 {before.sha256[:12]}... then, {now_read.sha256[:12]}... now); its trees are of "
                    "the old questions. Put the file back, or choose a new out=DIR"
                )
            update = {"status": "running", "resumed_at": [*previous.resumed_at, now()]}
            if before and now_read and not before.sha256:  # a run from before hashes: it starts checking now
                update["dataset"] = before.model_copy(update={"sha256": now_read.sha256})
            manifest = previous.model_copy(update=update)
        else:
            grown = {t.graph.graph.get("config_hash") for t in self.trees()} - {None}  # one tree at a time
            if grown and grown != {config_hash(config)}:
                raise AgoraError(
                    f"{self.path}: trees.jsonl holds trees grown under another config (hash "
                    f"{', '.join(sorted(grown))}, this config's is {config_hash(config)}) and the "
                    "manifest.json that recorded it is gone; choose a new out=DIR"
                )
            manifest = manifest.model_copy(update={"status": "running", "started_at": now(), "finished_at": None})
        manifest.write(self.manifest_path)

    def finish(self, counts: dict) -> str:
        """Record the counts; the run is complete only when no turn failed (`counts["failed_turns"]`)."""
        status = "complete" if not counts.get("failed_turns") else "incomplete"
        self._close()  # every tree on disk before the manifest says so
        if status == "complete":
            self._compact()
        manifest = self.manifest()
        manifest.model_copy(update={"status": status, "finished_at": now(), "counts": counts}).write(self.manifest_path)
        return status

    def append(self, tree: DialogueTree) -> None:
        if self._out is None:
            self._open()
        try:
            self._out.write((json.dumps(tree.to_json(), ensure_ascii=False) + "\n").encode())
            self._out.flush()
        except OSError as e:
            if e.errno not in DISK_FULL:
                raise
            with contextlib.suppress(OSError):  # what did not fit is a torn line the rerun drops
                self._out.close()
            self._out = None
            raise AgoraError(
                f"{self.trees_path}: {os.strerror(e.errno)}; the trees written before are kept. "
                "Free some space and run the same command again"
            ) from None
        if self._lines is not None:
            self._lines[tree.tree_id] = self._lines.get(tree.tree_id, 0) + 1
        self._unsynced += 1
        if self._unsynced >= SYNC_EVERY or time.monotonic() - self._synced_at >= SYNC_SECONDS:
            self._sync()

    def _open(self) -> None:
        """Open trees.jsonl for appending, first dropping a torn last line: a kill in the middle
        of an append leaves a line without its newline."""
        if not self.trees_path.exists():
            self._lines = {}
        self._out = self.trees_path.open("ab+")
        end = self._out.seek(0, os.SEEK_END)
        kept = end
        while kept > 0:  # back to the last newline, a block at a time
            start = max(0, kept - 65536)
            self._out.seek(start)
            block = self._out.read(kept - start)
            if b"\n" in block:
                kept = start + block.rindex(b"\n") + 1
                break
            kept = start
        if kept != end:
            self._out.truncate(kept)
        self._synced_at = time.monotonic()

    def _sync(self) -> None:
        if self._out is not None and self._unsynced:
            os.fsync(self._out.fileno())
        self._unsynced, self._synced_at = 0, time.monotonic()

    def _close(self) -> None:
        if self._out is not None:
            self._sync()
            self._out.close()
            self._out = None

    def _compact(self) -> None:
        """One line per tree, its last version: rewritten beside and renamed, never torn."""
        if not self.trees_path.exists():
            return
        if self._lines is not None and all(n == 1 for n in self._lines.values()):
            return  # every line went through this object, and no tree was written twice
        index, lines = self._index()
        if lines != len(index):
            with self.trees_path.open(encoding="utf-8") as f:
                kept = {line_no: line for line_no, line in enumerate(f, start=1) if line_no in index}
            # each tree where it first appeared, as `trees()` reads them: a regrown tree keeps its place
            order = sorted(index, key=lambda line_no: index[line_no][1])
            write_atomic(self.trees_path, "".join(kept[line_no] for line_no in order))

    def trees(self, bad_lines: list[str] | None = None) -> Iterator[DialogueTree]:
        """Every tree's last version, read one at a time, in the order the trees first appear. A
        line that is not a whole dialogue tree is an error naming the file and line, or, when
        `bad_lines` is a list, is reported there and skipped."""
        if not self.trees_path.exists():
            return
        index, _ = self._index(bad_lines)
        with self.trees_path.open("rb") as f:
            for line_no, (offset, _) in sorted(index.items(), key=lambda entry: entry[1][1]):
                f.seek(offset)
                # checked whole by _index
                yield DialogueTree.from_json(tree_line(json.loads(f.readline()), f"{self.trees_path}:{line_no}"))

    def trees_by_id(self, bad_lines: list[str] | None = None) -> dict[str, DialogueTree]:
        return {tree.tree_id: tree for tree in self.trees(bad_lines)}

    def _index(self, bad_lines: list[str] | None = None) -> tuple[dict[int, tuple[int, int]], int]:
        """{line number of each tree's last version: (its byte offset, the line where the tree
        first appears)}, and how many lines hold a tree. Checks every line, holding none."""
        last: dict[str, int] = {}  # tree id -> line number of its latest version
        where: dict[int, tuple[int, int]] = {}
        first: dict[str, int] = {}
        count: dict[str, int] = {}  # tree id -> lines that hold it
        lines, every_line_read = 0, True
        with self.trees_path.open("rb") as f:
            line_no, offset = 0, 0
            for raw in f:
                line_no += 1
                start, offset = offset, offset + len(raw)
                if not raw.strip():
                    continue
                try:
                    tree = tree_from_line(json.loads(raw), f"{self.trees_path}:{line_no}")
                except AgoraError:
                    raise  # a line of another schema version: every line is, so no skipping it
                except (UnicodeDecodeError, KeyError, TypeError, ValueError, nx.NetworkXError) as e:
                    every_line_read = False
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
                count[tree.tree_id] = count.get(tree.tree_id, 0) + 1
                where[line_no] = (start, first[tree.tree_id])
        # kept, and counted on as trees are appended, so that finishing knows whether trees.jsonl
        # needs compacting without reading it again
        self._lines = count if every_line_read else None
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
