"""The documentation: generated references are current, and the site builds strictly."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "docs"))

import gen_reference  # noqa: E402


def test_generated_references_are_current(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    for name, text in (("config.md", gen_reference.config_reference()),
                       ("cli.md", gen_reference.cli_reference())):
        committed = (REPO / "docs" / name).read_text()
        assert committed == text + "\n", f"docs/{name} is stale: run python docs/gen_reference.py"


def test_every_config_field_is_documented():
    for section, cls in gen_reference.SECTIONS:
        import dataclasses

        missing = [f.name for f in dataclasses.fields(cls) if f.name not in gen_reference.field_comments(cls)
                   and f.name not in ("mode",)]
        assert not missing or section == "train" and set(missing) <= {"stages"}, (section, missing)


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    if shutil.which("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    res = subprocess.run(["mkdocs", "build", "--strict", "-d", str(tmp_path / "site")], cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").is_file()
