"""The docs a user reads: the README is a short path (at most 250 lines, ``transferdet select`` in its
first 80), every command and option in ``--help`` is explained in the README or docs/, and every
relative link in them resolves."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import cli_commands

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_readme_is_a_short_path() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    assert any("transferdet select" in line for line in lines[:80])


def test_every_command_and_option_is_documented() -> None:
    text = "".join(page.read_text(encoding="utf-8") for page in PAGES)
    missing = []
    for name, command in cli_commands():
        if f"transferdet {name}" not in text and f"`{name}`" not in text:
            missing.append(name)
        flags = [o for param in command.params for o in param.opts if o.startswith("--") and o != "--help"]
        missing += [f"{name} {o}" for o in flags if not re.search(re.escape(o) + r"(?![\w-])", text)]
    assert missing == []


def test_every_relative_link_resolves() -> None:
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []
