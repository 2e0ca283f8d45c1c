"""`agora render`: text, Graphviz dot, and an HTML page checked in a real headless Chromium."""

import shutil

import pytest

from dialogue.evaluation.render import render_dot, render_html
from dialogue.running.rundir import RunDir
from tests.conftest import agora
from tests.test_mining import build

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def hostile_tree():
    """A resist pair at level 3, and a turn whose text tries to run a script."""
    tree = build(
        {
            "0": ("A", "neutral", "B"),
            "0.0": ("B", "resist", "A"),
            "0.1": ("B", "accept", "B"),
            "0.0.0": ("A", "logical", "B"),
            "0.0.0.0": ("B", "resist", "A"),
            "0.0.0.1": ("B", "accept", "B"),
        }
    )
    tree.graph.nodes["0.0.0"]["text"] = "Trust me. <script>alert(1)</script> Answer: B"
    return tree


def test_html_page_in_headless_chromium_shows_every_turn_and_escapes_model_text(tmp_path):
    from playwright.sync_api import sync_playwright

    page_path = tmp_path / "tree.html"
    page_path.write_text(render_html(hostile_tree()), encoding="utf-8")
    dialogs = []
    with sync_playwright() as p:
        # Flags: no sandbox as root, and no background connections on a machine with no network.
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(page_path.as_uri())
        turns = page.locator("details.turn")
        assert turns.count() == 6
        assert all(turns.nth(i).is_visible() for i in range(6))
        assert page.locator("script").count() == 0 and dialogs == []
        persuasion = page.locator('details.turn[data-id="0.0.0"] > .text')
        assert persuasion.inner_text() == "Trust me. <script>alert(1)</script> Answer: B"
        answer = page.locator('details.turn[data-id="0.0.0.0"] > summary .answer')
        assert answer.inner_text() == "answer A correct"
        assert "resist" in page.locator("ul.pairs").inner_text()
        assert page.locator(".gold").inner_text().startswith("A")
        # folding a branch hides its subtree
        page.locator('details.turn[data-id="0.0.0"] > summary').click()
        assert not page.locator('details.turn[data-id="0.0.0.0"]').is_visible()
        browser.close()


def test_dot_has_a_node_per_turn_and_an_edge_per_reply():
    dot = render_dot(hostile_tree())
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert dot.count("fillcolor") == 6 and dot.count("->") == 5
    assert '"0.0.0.0" [label="[0.0.0.0] B · resist\\nanswer A correct"' in dot
    assert '"0" -> "0.1" [label="", style=dashed]' in dot  # B's accept turn agreed: branch stopped


def test_render_command_writes_html_and_dot_beside_the_run(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.append(hostile_tree())
    for fmt in ("html", "dot"):
        result = agora("render", f"run={run.path}", "tree=t1", f"format={fmt}")
        assert result.returncode == 0, result.stderr
        assert (run.path / "render" / f"t1.{fmt}").exists()
    bad = agora("render", f"run={run.path}", "tree=t1", "format=pdf")
    assert bad.returncode == 2 and "format: Input should be 'text', 'html' or 'dot'" in bad.stderr


@pytest.fixture(autouse=True, scope="module")
def _chromium_is_installed():
    assert shutil.which("chromium") or shutil.os.path.exists(CHROMIUM), (
        "Debian's chromium is needed for the viewer test: `make test` installs it (apt-get install chromium)"
    )
