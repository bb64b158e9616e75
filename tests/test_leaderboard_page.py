"""The leaderboard's README.md as GitHub shows it: rendered to HTML, laid out at GitHub's content width (950 px)
in headless Chromium, every main table must fit without scrolling sideways.

The widths are printed (``pytest -s``). The page is built from the same hand-written study, export and profile
results as test_leaderboard_board.py, with and without the per-frame predictions of test_leaderboard_decisions.py
(with them, every row gets a paired decision against the best; without, long 'undecided' notes)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kdbench.leaderboard.build import README, build_leaderboard
from kdbench.leaderboard.render import MAIN_HEADERS
from test_leaderboard_board import write_export, write_profiles, write_study
from test_leaderboard_decisions import _with_predictions

WIDTH = 950  # px: GitHub's content width for a repository's README
LINE_PX = 21  # 14 px font, line height 1.5

# GitHub's table styles (markdown-body), the font stack and size of its Markdown pages.
CSS = """
body { margin: 0; }
article { width: %(width)dpx; font: 14px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
table { border-spacing: 0; border-collapse: collapse; display: block; width: max-content; max-width: 100%%;
        overflow: auto; }
th, td { padding: 6px 13px; border: 1px solid #d0d7de; }
th { font-weight: 600; }
code { font-size: 85%%; padding: .2em .4em; }
""" % {"width": WIDTH}

# Measures every table outside a <details> block (the main tables; the teacher's, the per-method ones) and writes
# the numbers into #widths, which --dump-dom prints: the main ones are those whose header is MAIN_HEADERS.
SCRIPT = """
const out = [];
for (const t of document.querySelectorAll("article table")) {
  if (t.closest("details")) continue;
  const head = Array.from(t.querySelectorAll("thead th")).map(th => th.textContent.trim());
  const lines = Array.from(t.querySelectorAll("tbody tr")).map(tr => tr.getBoundingClientRect().height);
  const heading = (pattern) => {
    let h = t.previousElementSibling;
    while (h && !pattern.test(h.tagName)) h = h.previousElementSibling;
    return h ? h.textContent : "";
  };
  const section = heading(/^H[23]$/), part = heading(/^H2$/);
  t.style.maxWidth = "none";  // its natural width: what it needs for no cell to wrap
  const natural = t.getBoundingClientRect().width;
  t.style.maxWidth = "";
  out.push({head: head, section: section, part: part, scroll: t.scrollWidth, client: t.clientWidth,
            natural: Math.ceil(natural), rowHeights: lines});
}
document.getElementById("widths").textContent = JSON.stringify(out);
"""


def chromium() -> str:
    """The Chromium binary, or skip."""
    for name in ("chromium", "chromium-browser", "/usr/bin/chromium", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no chromium: apt-get install chromium")


def markdown_to_html(text: str) -> str:
    """README.md rendered as GitHub renders Markdown: CommonMark, tables, raw HTML (<details>, <br>) passed through."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(text)


def measure(page: Path, browser: str, tmp: Path) -> list[dict]:
    """Open the page in headless Chromium and read back what SCRIPT measured."""
    cmd = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp / 'profile'}", "--window-size=1200,800", "--dump-dom", page.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env={**os.environ, "HOME": str(tmp)})
    found = re.search(r'<pre id="widths">(.*?)</pre>', done.stdout, re.S)
    assert found and found.group(1), f"chromium printed no measurements (rc {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def page_for(readme: str, path: Path) -> Path:
    body = markdown_to_html(readme)
    path.write_text(f'<!DOCTYPE html><html><head><meta charset="utf-8"><style>{CSS}</style></head><body>'
                    f'<article class="markdown-body">{body}</article><pre id="widths"></pre>'
                    f"<script>{SCRIPT}</script></body></html>", encoding="utf-8")
    return path


@pytest.fixture(params=["paired decisions", "no per-frame predictions"])
def board_inputs(request, tmp_path: Path) -> dict:
    study = write_study(tmp_path)
    out = {"root": tmp_path, "study": study, "export": write_export(tmp_path, study), "profiles": write_profiles(tmp_path),
           "case": request.param}
    if request.param == "paired decisions":
        _with_predictions(out)
    return out


def test_main_tables_fit_githubs_content_width(board_inputs):
    browser = chromium()
    root = board_inputs["root"]
    build_leaderboard(board_inputs["study"], root / "lb", board_inputs["export"], board_inputs["profiles"], plots=False)
    readme = (root / "lb" / README).read_text()
    tables = measure(page_for(readme, root / "page.html"), browser, root)
    main = [t for t in tables if t["head"] == [h.replace("<br>", "") for h in MAIN_HEADERS]]
    # two targets, each with its Pareto-optimal table and the rest
    assert len(main) == 4 and {t["section"].split(" (")[0] for t in main} == {"Pareto-optimal", "The rest"}
    assert readme.count("<details><summary>All figures for target ") == 2
    for t in tables:
        lines = (max(t["rowHeights"]) - 13) / LINE_PX if t["rowHeights"] else 0  # less padding and border
        where = " / ".join(dict.fromkeys(w for w in (t["part"], t["section"]) if w)) or "top of the page"
        print(f"{board_inputs['case']}: {where}: {' | '.join(t['head'][:2])} ... ({len(t['head'])} columns): scrollWidth "
              f"{t['scroll']} px, clientWidth {t['client']} px, unwrapped {t['natural']} px, tallest row {lines:.1f} lines")
    teacher = [t for t in tables if t["head"][:2] == ["target", "variant"]]
    assert len(teacher) == 1
    if board_inputs["case"] == "paired decisions":  # x86 ships the faster int8 copy of its best
        assert "(equivalent to the best)" in readme.split("\n- **x86**")[1].split("\n")[0]
    methods = [t for t in tables if t["section"] in ("Accuracy per method", "Distillation vs scratch, per architecture")]
    assert len(methods) == 2, [t["section"] for t in tables]
    for t in main + teacher + methods:
        assert t["client"] <= WIDTH and t["scroll"] <= WIDTH, t  # no scrolling sideways
        # the model cell is two lines by design (<br>); no row wraps further (padding 12 px + 1 px border)
        assert max(t["rowHeights"]) <= 2 * LINE_PX + 13 + 1, t
