"""Every Python example of the docs runs as written (from the repository root), but those
whose first line says ``# needs: ...`` (a file the reader makes first) and snippet includes
(``--8<--``, run by their own tests)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted((REPO / "docs").rglob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def examples() -> list:
    found = []
    for page in PAGES:
        blocks = [b for b in BLOCK.findall(page.read_text())
                  if not b.startswith(("# needs:", "--8<--"))]
        if blocks:
            found.append(pytest.param(page, blocks, id=str(page.relative_to(REPO))))
    return found


@pytest.mark.parametrize("page, blocks", examples())
def test_the_python_examples_of_a_page_run_in_order(page, blocks, monkeypatch):
    monkeypatch.chdir(REPO)
    namespace: dict = {"__name__": "__docs__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{page.relative_to(REPO)} (python example {i + 1})", "exec"),
             namespace)


def test_the_examples_are_found():
    assert {p.values[0].name for p in examples()} >= {"plugins.md", "export.md",
                                                       "getting-started.md"}
