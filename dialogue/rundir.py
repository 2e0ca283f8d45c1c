"""The run directory: manifest.json, trees.jsonl and gen_cache.sqlite.

A tree is appended to trees.jsonl only when it is complete, as one whole line, flushed and
synced. A run started again in the same directory drops a torn last line, skips the trees
already written and finishes the rest. The manifest says `"status": "complete"` only after the
last tree is written, so a killed run never looks finished.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import networkx as nx

from agents.errors import AgoraError
from dialogue.tree import DialogueTree


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.manifest_path = self.path / "manifest.json"
        self.trees_path = self.path / "trees.jsonl"
        self.cache_path = self.path / "gen_cache.sqlite"

    def manifest(self) -> dict | None:
        if not self.manifest_path.exists():
            return None
        return json.loads(self.manifest_path.read_text())

    def begin(self, manifest: dict) -> None:
        """Start or resume. Resuming with a different config would mix two experiments."""
        self.path.mkdir(parents=True, exist_ok=True)
        previous = self.manifest()
        if previous is not None:
            if previous.get("config") != manifest.get("config"):
                raise AgoraError(
                    f"{self.manifest_path}: this run directory holds a run with a different "
                    "config; choose a new out=DIR"
                )
            manifest = {**previous, "status": "running", "resumed_at": [*previous.get("resumed_at", []), now()]}
        else:
            manifest = {**manifest, "status": "running", "started_at": now(), "finished_at": None}
        self._write_manifest(manifest)

    def finish(self, counts: dict) -> None:
        manifest = self.manifest() or {}
        self._write_manifest({**manifest, "status": "complete", "finished_at": now(), "counts": counts})

    def _write_manifest(self, manifest: dict) -> None:
        # Write beside and rename: a reader never sees half a manifest.
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".manifest-")
        with os.fdopen(fd, "w") as f:
            json.dump(manifest, f, indent=2, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.manifest_path)

    def done_tree_ids(self) -> set[str]:
        self._drop_torn_tail()
        return {tree.tree_id for tree in self.trees()}

    def _drop_torn_tail(self) -> None:
        if not self.trees_path.exists():
            return
        with self.trees_path.open("rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)

    def append(self, tree: DialogueTree) -> None:
        line = json.dumps(tree.to_json(), ensure_ascii=False) + "\n"
        with self.trees_path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def trees(self, bad_lines: list[str] | None = None) -> Iterator[DialogueTree]:
        """The trees in file order. A line that is not a whole dialogue tree is an error naming
        the file and line, or, when `bad_lines` is a list, is reported there and skipped."""
        if not self.trees_path.exists():
            return
        with self.trees_path.open(encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    tree = DialogueTree.from_json(json.loads(line))
                    tree.question, tree.turns()  # every node must be a valid turn
                except (json.JSONDecodeError, KeyError, TypeError, ValueError, nx.NetworkXError) as e:
                    problem = f"{self.trees_path}:{line_no}: not a dialogue tree ({_first_line(e)})"
                    if bad_lines is None:
                        raise AgoraError(problem) from e
                    bad_lines.append(problem)
                    continue
                yield tree


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
