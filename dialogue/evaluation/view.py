"""`agora view`: a run, or several side by side, as one self-contained site.

`index.html` shows each run's config and summary, then a table with one row per question:
the question, its gold answer, and per run each agent's first and last answers, the flips of
the run's responder (correct -> wrong, wrong -> correct), unreadable and failed turns, and the
pairs `miner=pbt` takes. The table filters, sorts and pages in the page itself (the rows are a
JSON island, drawn 100 at a time, so 10,000 trees open as fast as 100), and each run's cell links
to the tree's page (`trees/RUN/TREE.html`, as `agora render` draws it, with a link back). Nothing
is fetched from a network, and model text only ever reaches the page as text.
"""

from __future__ import annotations

import contextlib
import html
import http.server
import json
import os
import shutil
import tempfile
from functools import partial
from pathlib import Path
from urllib.parse import quote

from pydantic import Field, model_validator

from agents.config import Strict
from agents.errors import AgoraError
from agents.files import make_readable
from dialogue.core.questions import show_question
from dialogue.core.tree import DialogueTree
from dialogue.evaluation.page import page
from dialogue.evaluation.render import gold_text, render_html, safe_file_name
from dialogue.evaluation.report import folder_labels
from dialogue.mining.miners import MINERS
from dialogue.mining.rules import pbt_pairs
from dialogue.records import RunManifest
from dialogue.running.config import one_as_list
from dialogue.running.rundir import RunDir, failed_turns
from dialogue.running.summary import persuasion


class ViewConfig(Strict):
    """`agora view` (conf/view.yaml)."""

    run: list[str] = Field(min_length=1)
    out: str | None = None  # null: RUN/view of the first run
    serve: bool = False  # serve the site on 127.0.0.1 after writing it
    port: int = Field(0, ge=0, le=65535)  # 0: a free port
    page_size: int = Field(100, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _one_run(cls, data):
        return one_as_list(data, "run")


# the protocols whose trees the PBT miners read: the view counts their pairs
PAIRED = frozenset().union(*(miner.reads for miner in MINERS.values() if miner.persuasions))


def tree_cells(tree: DialogueTree, responders: set[str] | None) -> dict:
    """What the table shows of one tree."""
    turns = tree.turns()
    cells: dict = {}
    for agent in sorted({t.speaker for t in turns if t.gen is not None}):
        own = [t for t in turns if t.speaker == agent and t.gen is not None]
        first, deepest = min(t.depth for t in own), max(t.depth for t in own)
        cells[f"{agent} first"] = _answers(t for t in own if t.depth == first)
        cells[f"{agent} last"] = _answers(t for t in own if t.depth == deepest)
    flips = persuasion(tree, responders)
    cells["c->w"], cells["w->c"] = flips.correct_to_wrong, flips.wrong_to_correct
    cells["unreadable"] = sum(1 for t in turns if t.gen is not None and t.answer is None and not t.agrees_with_parent)
    cells["failed"] = len(failed_turns(tree))
    cells["pairs"] = len(pbt_pairs(tree, responders=responders)) if tree.graph.graph["protocol"] in PAIRED else 0
    return cells


def _answers(turns) -> str:
    """The answers of a set of turns, each once: "B", or "A/B" where branches differ."""
    found = sorted({"-" if t.answer is None else t.answer for t in turns})
    return "/".join(found)


def view(config: ViewConfig) -> Path:
    """Write the site; returns its folder. Written beside `out` and moved into place."""
    runs = [RunDir(r) for r in config.run]
    manifests = [run.manifest() for run in runs]
    for run, manifest, name in zip(runs, manifests, config.run, strict=True):
        if manifest is None or not run.trees_path.exists():
            raise AgoraError(f"run={name}: not a run directory (no manifest.json or trees.jsonl)")
    out = Path(config.out) if config.out else runs[0].path / "view"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        questions: dict[str, dict] = {}
        labels = folder_labels(config.run)
        for i, (run, manifest) in enumerate(zip(runs, manifests, strict=True)):
            responders = {manifest.run_config().protocol.responder}
            folder = tmp / "trees" / str(i)
            folder.mkdir(parents=True)
            for tree in run.trees():
                file = f"{safe_file_name(tree.tree_id)}.html"
                (folder / file).write_text(render_html(tree, back="../../index.html"), encoding="utf-8")
                q = tree.question
                row = questions.setdefault(
                    q.question_id, {"question": show_question(q), "gold": gold_text(tree), "runs": {}}
                )
                row["runs"][str(i)] = {
                    "tree": tree.tree_id,
                    "page": f"trees/{i}/{quote(file)}",  # a link: the file name's own "%" escaped once more
                    **tree_cells(tree, responders),
                }
        heads = [
            _run_head(label, manifest, name)
            for label, manifest, name in zip(labels, manifests, config.run, strict=True)
        ]
        data = {"labels": labels, "rows": list(questions.values()), "page_size": config.page_size}
        (tmp / "index.html").write_text(_index(heads, data), encoding="utf-8")
        make_readable(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def _run_head(label: str, manifest: RunManifest, path: str) -> str:
    esc = html.escape
    config, counts = manifest.run_config(), manifest.counts or {}
    agents = ", ".join(f"{name}: {a.model} ({a.persona})" for name, a in config.agents.items())
    facts = [
        ("status", manifest.status),
        ("protocol", config.protocol.name),
        ("agents", agents),
        # the file or Hub dataset the questions came from (the bundled name only when it is neither)
        ("dataset", manifest.dataset.source if manifest.dataset else config.dataset.name),
        ("seed", config.seed),
        ("trees", counts.get("trees")),
        ("turns", counts.get("turns")),
        (
            "first-answer accuracy",
            ", ".join(f"{k} {v:.0%}" for k, v in counts.get("first_answer_accuracy", {}).items()),
        ),
        ("persuasion attempts", counts.get("attempts")),
        ("correct -> wrong", counts.get("correct_to_wrong")),
        ("wrong -> correct", counts.get("wrong_to_correct")),
        ("failed turns", counts.get("failed_turns")),
    ]
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in facts if v not in (None, ""))
    full = esc(json.dumps(manifest.config, indent=2))
    return (
        f'<section class="run"><h2>{esc(label)}</h2><p class="path">{esc(str(path))}</p>'
        f'<table class="facts">{rows}</table><details><summary>config</summary><pre>{full}</pre></details></section>'
    )


def _json_island(data) -> str:
    """JSON that cannot end the <script> element it sits in, whatever the model wrote."""
    return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _index(heads: list[str], data: dict) -> str:
    body = f"""<h1>agora view</h1>
<div class="runs">{"".join(heads)}</div>
<div class="controls">
  <input id="search" type="search" placeholder="search questions" aria-label="search questions">
  <select id="filter" aria-label="filter"></select>
  <span id="count"></span>
  <button id="prev" type="button">&larr;</button><span id="pageno"></span>
  <button id="next" type="button">&rarr;</button>
</div>
<table id="trees"><thead></thead><tbody></tbody></table>
<script type="application/json" id="data">{_json_island(data)}</script>"""
    return page(f"agora view: {', '.join(data['labels'])}", body, script="view.js")


def serve(folder: Path, port: int = 0) -> None:
    """Serve `folder` on 127.0.0.1 until interrupted, printing its address first."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    # a thread per connection: a browser's idle keep-alive connection must not block the next one
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"serving http://127.0.0.1:{server.server_address[1]}/ (ctrl-c stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):  # ctrl-c is how it stops
            server.serve_forever()
