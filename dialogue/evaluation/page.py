"""The frame of every HTML page Agora writes (`agora view`, `agora render`, report.html, the
comparison page): one stylesheet and the view's script, kept as files in `assets/` and inlined,
so a page opens on its own from disk or from any server."""

from __future__ import annotations

from functools import cache
from html import escape
from pathlib import Path

ASSETS = Path(__file__).with_name("assets")


@cache
def asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def page(title: str, body: str, *, body_class: str = "", script: str | None = None) -> str:
    """A whole page. `body` is HTML whose text is already escaped; `script` names an asset run
    after it."""
    attributes = f' class="{body_class}"' if body_class else ""
    run = f"\n<script>{asset(script)}</script>" if script else ""
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>\n'
        f"<style>{asset('page.css')}</style></head><body{attributes}>\n{body}{run}\n</body></html>\n"
    )
