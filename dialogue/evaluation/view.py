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
import socketserver
import tempfile
from functools import partial
from pathlib import Path

from pydantic import Field, model_validator

from agents.config import Strict
from agents.errors import AgoraError
from agents.files import make_readable
from dialogue.core.questions import show_question
from dialogue.core.tree import DialogueTree
from dialogue.evaluation.render import gold_text, render_html, safe_file_name
from dialogue.evaluation.report import folder_labels
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
    cells["pairs"] = len(pbt_pairs(tree, responders=responders)) if tree.graph.graph["protocol"] == "pbt_tree" else 0
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
                page = f"{safe_file_name(tree.tree_id)}.html"
                (folder / page).write_text(render_html(tree, back="../../index.html"), encoding="utf-8")
                q = tree.question
                row = questions.setdefault(
                    q.question_id, {"question": show_question(q), "gold": gold_text(tree), "runs": {}}
                )
                row["runs"][str(i)] = {
                    "tree": tree.tree_id,
                    "page": f"trees/{i}/{page}",
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
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>agora view: {html.escape(", ".join(data["labels"]))}</title>
<style>{STYLE}</style></head><body>
<h1>agora view</h1>
<div class="runs">{"".join(heads)}</div>
<div class="controls">
  <input id="search" type="search" placeholder="search questions" aria-label="search questions">
  <select id="filter" aria-label="filter"></select>
  <span id="count"></span>
  <button id="prev" type="button">&larr;</button><span id="pageno"></span>
  <button id="next" type="button">&rarr;</button>
</div>
<table id="trees"><thead></thead><tbody></tbody></table>
<script type="application/json" id="data">{_json_island(data)}</script>
<script>{SCRIPT}</script>
</body></html>
"""


STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; }
.runs { display: flex; flex-wrap: wrap; gap: 1.5em; }
.run h2 { margin: 0; font-size: 1.1em; } .path { color: #777; margin: 0 0 .3em; font-family: monospace; }
table.facts th { text-align: left; font-weight: normal; color: #555; padding-right: 1em; }
.controls { margin: 1em 0 .5em; display: flex; gap: .6em; align-items: center; }
#search { width: 20em; }
#trees { border-collapse: collapse; width: 100%; }
#trees th, #trees td { border-bottom: 1px solid #ddd; padding: .25em .5em; text-align: left; vertical-align: top; }
#trees th { cursor: pointer; background: #f4f4f4; position: sticky; top: 0; white-space: nowrap; }
#trees th.group { text-align: center; cursor: default; }
#trees tbody tr:hover { background: #f0f6ff; }
#trees td.question { max-width: 40em; white-space: pre-wrap; }
#trees td.tree { white-space: nowrap; }
#trees td.num { text-align: right; font-variant-numeric: tabular-nums; }
#trees td.bad { color: #b22; font-weight: bold; }
#trees a { color: inherit; }
"""

# Drawn with the DOM's textContent only: no model text is ever parsed as HTML.
SCRIPT = r"""
const data = JSON.parse(document.getElementById("data").textContent);
const runs = data.labels.map((label, i) => ({label, key: String(i)}));
const cellKeys = [];
for (const row of data.rows) for (const run of Object.values(row.runs))
  for (const k of Object.keys(run)) if (!["tree", "page"].includes(k) && !cellKeys.includes(k)) cellKeys.push(k);
const numeric = new Set(["c->w", "w->c", "unreadable", "failed", "pairs"]);
const columns = [{key: "question", label: "question"}, {key: "gold", label: "gold"}];
for (const run of runs) {
  columns.push({key: "tree", run: run.key, label: "tree"});
  for (const k of cellKeys) columns.push({key: k, run: run.key, label: k});
}
const value = (row, col) => col.run === undefined ? row[col.key] : (row.runs[col.run] || {})[col.key];
const filters = [{label: "all trees", test: () => true}];
const many = runs.length > 1;
for (const run of runs) {
  const of = many ? " (" + run.label + ")" : "";
  const has = (k) => (row) => ((row.runs[run.key] || {})[k] || 0) > 0;
  filters.push({label: "flipped correct -> wrong" + of, test: has("c->w")});
  filters.push({label: "flipped wrong -> correct" + of, test: has("w->c")});
  filters.push({label: "unreadable turns" + of, test: has("unreadable")});
  filters.push({label: "failed turns" + of, test: has("failed")});
  filters.push({label: "pairs mined" + of, test: has("pairs")});
}
const select = document.getElementById("filter");
filters.forEach((f, i) => {
  const o = document.createElement("option"); o.value = i; o.textContent = f.label; select.append(o);
});
let sortCol = null, sortDir = 1, page = 0, shown = data.rows;

function head() {
  const thead = document.querySelector("#trees thead");
  if (many) {
    const top = thead.insertRow();
    const blank = document.createElement("th"); blank.colSpan = 2; blank.className = "group"; top.append(blank);
    for (const run of runs) {
      const th = document.createElement("th"); th.colSpan = cellKeys.length + 1; th.className = "group";
      th.textContent = run.label; top.append(th);
    }
  }
  const tr = thead.insertRow();
  columns.forEach((col, i) => {
    const th = document.createElement("th"); th.textContent = col.label; th.dataset.col = i;
    th.addEventListener("click", () => { sortDir = sortCol === i ? -sortDir : 1; sortCol = i; update(); });
    tr.append(th);
  });
}

function update() {
  const text = document.getElementById("search").value.toLowerCase();
  const test = filters[Number(select.value)].test;
  shown = data.rows.filter((row) => test(row) && row.question.toLowerCase().includes(text));
  if (sortCol !== null) {
    const col = columns[sortCol];
    shown = [...shown].sort((a, b) => {
      const x = value(a, col), y = value(b, col);
      if (x === y) return 0;
      if (x === undefined) return 1;
      if (y === undefined) return -1;
      return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * sortDir;
    });
  }
  const pages = Math.max(1, Math.ceil(shown.length / data.page_size));
  page = Math.min(page, pages - 1);
  draw(pages);
}

function draw(pages) {
  const body = document.querySelector("#trees tbody");
  body.replaceChildren();
  for (const row of shown.slice(page * data.page_size, (page + 1) * data.page_size)) {
    const tr = body.insertRow();
    tr.className = "tree";
    for (const col of columns) {
      const td = tr.insertCell();
      const v = value(row, col);
      if (col.key === "question" || col.key === "tree") td.className = col.key;
      if (numeric.has(col.key)) td.className = "num" + (v > 0 && col.key !== "pairs" ? " bad" : "");
      if (col.key === "tree" && v !== undefined) {
        const a = document.createElement("a"); a.href = row.runs[col.run].page; a.textContent = v; td.append(a);
      } else {
        td.textContent = v === undefined ? "" : String(v);
      }
    }
    const first = runs.find((run) => row.runs[run.key]);
    tr.addEventListener("click", (e) => { if (e.target.tagName !== "A") location.href = row.runs[first.key].page; });
  }
  document.getElementById("count").textContent = shown.length + " of " + data.rows.length + " questions";
  document.getElementById("pageno").textContent = " page " + (page + 1) + " of " + pages + " ";
}

document.getElementById("search").addEventListener("input", () => { page = 0; update(); });
select.addEventListener("change", () => { page = 0; update(); });
document.getElementById("prev").addEventListener("click", () => { if (page > 0) { page--; update(); } });
document.getElementById("next").addEventListener("click", () => { page++; update(); });
head();
update();
"""


def serve(folder: Path, port: int = 0) -> None:
    """Serve `folder` on 127.0.0.1 until interrupted, printing its address first."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    with socketserver.TCPServer(("127.0.0.1", port), handler) as server:
        print(f"serving http://127.0.0.1:{server.server_address[1]}/ (ctrl-c stops)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):  # ctrl-c is how it stops
            server.serve_forever()
