"""`agora view` and the evaluation's report.html, opened in headless Chromium as a reader would."""

import json
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from dialogue.running.rundir import RunDir
from dialogue.running.summary import persuasion
from tests.conftest import REPO, SUITE_ORDER, agora, chromium_page, scripted_run

HOSTILE = "Which is right? <script>alert('question')</script><img src=x onerror=alert('img')>"


def hostile_run(tmp_path, monkeypatch, count=50):
    """The scripted PBT run (A argues for A; B takes A only when told to accept) on 50 questions
    whose gold alternates A, B: gold A trees flip B wrong -> right, gold B trees right -> wrong.
    One question carries a script."""
    rows = [
        {
            "id": f"q{i:02d}",
            "question": HOSTILE if i == 7 else f"Question {i}?",
            "choices": ["a", "b"],
            "answer": "AB"[i % 2],
        }
        for i in range(count)
    ]
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "questions.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = [f"dataset.path={data}", "dataset.fields.id=id", "dataset.fields.choices=choices"]
    run = scripted_run(tmp_path / "run", monkeypatch, count, 0, *overrides)
    monkeypatch.undo()
    return run


def test_the_run_site_filters_opens_trees_and_shows_scripts_as_text(tmp_path, monkeypatch):
    run = hostile_run(tmp_path, monkeypatch)
    trees = list(RunDir(run).trees())
    flipped = {t.tree_id for t in trees if persuasion(t, {"B"}).correct_to_wrong > 0}
    assert len(trees) == 50 and 0 < len(flipped) < 50
    done = agora("view", f"run={run}", f"out={tmp_path / 'site'}")
    assert done.returncode == 0, done.stderr
    with chromium_page() as (page, dialogs):
        page.goto((tmp_path / "site" / "index.html").as_uri())
        rows = page.locator("#trees tbody tr")
        assert rows.count() == 50
        page.select_option("#filter", label="flipped correct -> wrong")
        shown = {rows.nth(i).locator("td a").inner_text() for i in range(rows.count())}
        assert shown == flipped
        page.screenshot(path=str(tmp_path / "view.png"), full_page=True)
        # the header names the user's own file, not the default dataset name
        assert str(tmp_path / "questions.jsonl") in page.locator("body").inner_text()
        # the question's script is text in the table, and nothing ran
        page.select_option("#filter", label="all trees")
        page.fill("#search", "alert")
        assert rows.count() == 1 and rows.nth(0).locator("td.question").inner_text().startswith(HOSTILE + "\n")
        assert page.locator("#trees script, #trees img").count() == 0
        # a row opens its tree, which links back
        rows.nth(0).locator("td.question").click()
        page.wait_for_load_state()
        assert page.url.endswith("/trees/0/q07.html")
        assert page.locator("h1").inner_text().startswith("tree q07")
        assert HOSTILE in page.locator(".question").inner_text()
        page.locator("a.back").click()
        page.wait_for_load_state()
        assert page.url.endswith("/index.html")
        assert dialogs == []


def test_two_runs_show_side_by_side_per_question(tmp_path, monkeypatch):
    first = hostile_run(tmp_path / "a", monkeypatch, count=6)
    second = hostile_run(tmp_path / "b", monkeypatch, count=4)
    done = agora("view", f"run={first}", f"run={second}", f"out={tmp_path / 'site'}")
    assert done.returncode == 0, done.stderr
    with chromium_page() as (page, dialogs):
        page.goto((tmp_path / "site" / "index.html").as_uri())
        assert page.locator("#trees tbody tr").count() == 6  # one row per question
        groups = page.locator("#trees thead th.group")
        assert [groups.nth(i).inner_text() for i in range(groups.count())][1:] == [str(first), str(second)]
        last = page.locator("#trees tbody tr").nth(5)
        assert last.locator("td a").count() == 1  # question 5 is in the first run only
        assert dialogs == []


def test_view_serves_the_site_on_localhost(tmp_path, monkeypatch):
    run = hostile_run(tmp_path, monkeypatch, count=2)
    server = subprocess.Popen(
        [sys.executable, "-m", "agora", "view", f"run={run}", "serve=true"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [server.stdout.readline(), server.stdout.readline()]
        address = re.search(r"serving (http://127\.0\.0\.1:(\d+)/)", lines[1])
        # a client that connects and says nothing blocks no one else
        idle = socket.create_connection(("127.0.0.1", int(address.group(2))), timeout=10)
        with idle, urllib.request.urlopen(address.group(1) + "index.html", timeout=10) as reply:
            assert reply.status == 200 and b"agora view" in reply.read()
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_evaluation_page_has_every_suite_its_plots_and_transcripts(tmp_path, evaluated_all):
    out, _ = evaluated_all
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["suites"]) == SUITE_ORDER
    with chromium_page() as (page, dialogs):
        page.goto((out / "report.html").as_uri())
        for suite, result in metrics["suites"].items():
            section = page.locator(f"section#suite-{suite}")
            assert section.count() == 1, suite
            for name, e in result["metrics"].items():
                row = section.locator(f'tr[data-metric="{name}"]')
                expected = "n/a" if e["value"] is None else f"{e['value']:.3f} [{e['low']:.3f}, {e['high']:.3f}]"
                assert row.locator("td.value").inner_text() == expected, (suite, name)
                assert row.locator("td.n").inner_text() == str(e["n"])
            images = section.locator(".plots img")
            assert images.count() == len(result["plots"]) > 0
            assert all(images.nth(i).evaluate("i => i.naturalWidth") > 300 for i in range(images.count()))
            section.locator("details.questions > summary").click()
            assert section.locator("a.transcript").count() >= 1, suite
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        link = page.locator("section#suite-are_you_sure a.transcript").first
        question = link.locator("xpath=../..").locator("td").first.inner_text()
        link.click()
        page.wait_for_load_state()
        assert "/are_you_sure/view/trees/0/" in page.url
        assert page.locator("h1").inner_text().startswith(f"tree {question}")
        page.go_back()
        page.locator("section#suite-balanced details.questions > summary").click()
        page.locator("section#suite-balanced a.transcript").first.click()
        page.wait_for_load_state()
        assert "/balanced/replies.html#q-" in page.url
        assert page.locator("table.record").count() > 0
        assert dialogs == []


def test_links_to_questions_whose_ids_need_escaping_open_their_pages(tmp_path, monkeypatch):
    """An id with a space, "/", ":" or an emoji is a file name with percent signs in it; the
    links of the view and of the evaluation report escape it once more, so a browser, which
    decodes a link, finds that file."""
    from urllib.parse import unquote, urlsplit

    from dialogue.evaluation.report_page import _transcripts

    ids = ["a b", "x/y", "c:d", "\N{GRINNING FACE}", "plain"]
    rows = [{"id": i, "question": f"Question {n}?", "choices": ["a", "b"], "answer": "A"} for n, i in enumerate(ids)]
    data = tmp_path / "questions.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = [f"dataset.path={data}", "dataset.fields.id=id", "dataset.fields.choices=choices", "dataset.split=all"]
    suite = tmp_path / "eval" / "suite"
    run = scripted_run(suite / "run", monkeypatch, len(ids), 0, *overrides)
    monkeypatch.undo()

    def opens(base: Path, href: str) -> bool:  # what a browser does with a relative link
        return (base / unquote(urlsplit(href).path)).is_file()

    done = agora("view", f"run={run}", f"out={tmp_path / 'site'}")
    assert done.returncode == 0, done.stderr
    index = (tmp_path / "site" / "index.html").read_text()
    island = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', index, re.S).group(1))
    pages = [r["page"] for row in island["rows"] for r in row["runs"].values()]
    assert len(pages) == len(ids) and all(opens(tmp_path / "site", p) for p in pages), pages

    links = _transcripts("suite", suite)
    found = [href for question in ids for _, href in links(question)]
    assert len(found) == len(ids) and all(opens(suite.parent, href) for href in found), found
