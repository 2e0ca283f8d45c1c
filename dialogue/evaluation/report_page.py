"""`report.html`: an evaluation as one page, beside report.md, and `agora eval compare` as one.

Each suite's table (value, 95% interval, n, method), its plots inline (as data, so the page
can be moved or mailed), and for every question a link to what it was scored on: the dialogue
of a protocol suite (pages of `agora view` over the suite's runs), the greedy reply of
`balanced`, the scored answers of `assessment`. A surprising number leads to its dialogues.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from urllib.parse import quote

from dialogue.evaluation.page import page
from dialogue.evaluation.render import safe_file_name
from dialogue.evaluation.report import INTERVALS, cell
from dialogue.evaluation.suites import SUITES
from dialogue.evaluation.view import ViewConfig, view
from dialogue.records import EvalMetrics, SuiteResult

esc = html.escape


def write_report_page(metrics: EvalMetrics, out: Path) -> Path:
    """out/report.html, with the transcript pages it links to."""
    sections = [_suite(suite, result, out) for suite, result in metrics.suites.items()]
    sections += [
        f'<section class="suite" id="suite-{esc(suite)}"><h2>{esc(suite)}</h2><p>not run: {esc(why)}</p></section>'
        for suite, why in metrics.not_run.items()
    ]
    data = metrics.data
    facts = [
        ("model", metrics.model),
        ("partner", metrics.partner),
        ("persona", metrics.persona),
        ("stimulus", metrics.stimulus),
        ("seed", metrics.seed),
        ("questions", f"{data.get('dataset')}, split {data.get('split')}" if data else None),
        ("exports", ", ".join(data.get("exports", [])) or None),
        ("finished", metrics.finished_at),
    ]
    overlap = metrics.overlap
    warning = (
        '<p class="warning">Trained-on questions were evaluated (allow_overlap=true): '
        + esc(", ".join(f"{s}: {len(ids)}" for s, ids in overlap.items()))
        + "</p>"
        if overlap
        else ""
    )
    text = _page(
        f"Evaluation: {metrics.model}",
        _facts(facts) + warning + f"<p>{esc(INTERVALS.format(resamples=metrics.resamples))}</p>" + "".join(sections),
    )
    path = out / "report.html"
    path.write_text(text, encoding="utf-8")
    return path


def _suite(suite: str, result: SuiteResult, out: Path) -> str:
    rows = "".join(
        f'<tr data-metric="{esc(name)}"><td>{esc(name)}</td><td class="value">{esc(cell(e))}</td>'
        f'<td class="n">{e["n"]}</td><td>{esc(e.get("method", "bootstrap"))}</td></tr>'
        for name, e in result.metrics.items()
    )
    details = {k: v for k, v in result.details.items() if k != "margins"}
    plots = "".join(_image(out / "plots" / name, f"{suite}: {name}") for name in result.plots)
    links = _transcripts(suite, out / suite)
    questions = sorted(result.records or {})
    listed = "".join(
        f"<tr><td>{esc(q)}</td><td>{' '.join(_link(href, label) for label, href in links(q)) or '-'}</td></tr>"
        for q in questions
    )
    source = result.source
    return (
        f'<section class="suite" id="suite-{esc(suite)}"><h2>{esc(suite)}</h2><p>{esc(SUITES[suite].about)}</p>'
        f"<p>questions: {result.questions}{f' ({esc(source)})' if source else ''}</p>"
        f'<table class="metrics"><thead><tr><th>metric</th><th>value [95% CI]</th><th>n</th><th>method</th></tr>'
        f"</thead><tbody>{rows}</tbody></table>"
        + (f'<p class="details">details: {esc(json.dumps(details))}</p>' if details else "")
        + f'<div class="plots">{plots}</div>'
        + f'<details class="questions"><summary>{len(questions)} questions and what they were scored on</summary>'
        f'<table class="questions"><tbody>{listed}</tbody></table></details></section>'
    )


def _transcripts(suite: str, folder: Path):
    """question id -> [(label, address relative to the report)] for one suite's folder."""
    runs = sorted(p.parent for p in folder.glob("*/trees.jsonl"))
    if runs:
        site = view(ViewConfig(run=[str(r) for r in runs], out=str(folder / "view")))
        names = [r.name for r in runs]

        def pages(question_id: str) -> list[tuple[str, str]]:
            found = []
            for i, name in enumerate(names):
                file = site / "trees" / str(i) / f"{safe_file_name(question_id)}.html"
                if file.exists():
                    link = quote(file.relative_to(folder.parent).as_posix())  # the file name's "%" escaped again
                    found.append((name if len(names) > 1 else "dialogue", link))
            return found

        return pages
    for file, title in (("replies.jsonl", "greedy replies"), ("scores.jsonl", "scored answers")):
        if (folder / file).exists():
            rows = [json.loads(line) for line in (folder / file).read_text().splitlines() if line]
            written = folder / file.replace(".jsonl", ".html")
            written.write_text(_records_page(f"{suite}: {title}", rows), encoding="utf-8")
            ids = {r["question_id"] for r in rows}
            relative = written.relative_to(folder.parent).as_posix()
            return lambda q: [(title, f"{relative}#{_anchor(q)}")] if q in ids else []
    return lambda q: []


def _records_page(title: str, rows: list[dict]) -> str:
    """One block per record, every field as text, each question an anchor."""
    blocks, seen = [], set()
    for row in rows:
        anchor = "" if row["question_id"] in seen else f' id="{_anchor(row["question_id"])}"'
        seen.add(row["question_id"])
        fields = "".join(
            f"<tr><th>{esc(k)}</th><td>{esc(v if isinstance(v, str) else json.dumps(v, indent=1))}</td></tr>"
            for k, v in row.items()
        )
        blocks.append(f'<table class="record"{anchor}>{fields}</table>')
    return _page(title, '<p><a href="../report.html">&larr; report</a></p>' + "".join(blocks))


def _anchor(question_id: str) -> str:
    return "q-" + safe_file_name(question_id)


def _link(href: str, label: str) -> str:
    return f'<a class="transcript" href="{esc(href)}">{esc(label)}</a>'


def _image(path: Path, alt: str) -> str:
    if not path.is_file():
        return f"<p>missing plot: {esc(path.name)}</p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">'


def _facts(facts: list[tuple[str, object]]) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in facts if v is not None)
    return f'<table class="facts">{rows}</table>'


def _page(title: str, body: str) -> str:
    return page(title, f"<h1>{esc(title)}</h1>{body}")


def compare_page(
    markdown_table: str,
    evaluations: list[tuple[str, str]],
    plot: Path | None,
    title: str = "Comparison",
    more: str = "",
) -> str:
    """`agora eval compare` as a page: each evaluation with a link to its report, the table,
    the plot; `more`, a second markdown table (the rounds of a loop), after them."""
    # the title and the list of evaluations are the page's own heading and linked list
    prose = [line for line in markdown_table.splitlines() if line and not line.startswith(("|", "#", "- ", "!["))]
    note = " ".join(prose)
    listed = "".join(
        f"<li>{esc(label)}: {_link(Path(folder, 'report.html').resolve().as_uri(), folder)}</li>"
        for label, folder in evaluations
    )
    image = _image(plot, "comparison") if plot is not None else ""
    extra = _html_table(more, "rounds") if more else ""
    return _page(title, f"<ul>{listed}</ul>{_html_table(markdown_table, 'metrics')}<p>{esc(note)}</p>{image}{extra}")


def _html_table(markdown: str, css: str) -> str:
    """The table rows of a markdown text as an HTML table."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines if not set(line) <= set("|-")]
    head = "".join(f"<th>{esc(c)}</th>" for c in rows[0]) if rows else ""
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
