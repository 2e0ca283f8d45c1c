"""`agora render`: text, Graphviz dot, and an HTML page checked in a real headless Chromium."""

from dialogue.evaluation.render import render_dot, render_html
from dialogue.running.rundir import RunDir
from tests.conftest import agora, chromium_page
from tests.test_mining import build


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
    page_path = tmp_path / "tree.html"
    page_path.write_text(render_html(hostile_tree()), encoding="utf-8")
    with chromium_page() as (page, dialogs):
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
