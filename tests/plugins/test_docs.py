"""docs/writing-a-plugin.md shows the example plugin's files exactly as they are."""

from __future__ import annotations

import re

from .conftest import PLUGINS, ROOT

DOC = ROOT / "docs" / "writing-a-plugin.md"


def _block_after(text: str, heading: str, lang: str) -> str:
    start = text.index(heading)
    m = re.compile(rf"```{lang}\n(.*?)\n```", re.S).search(text, start)
    assert m, f"no ```{lang} block after {heading!r}"
    return m.group(1)


def test_the_guide_shows_the_example_files_verbatim():
    text = DOC.read_text()
    for name, lang in (("pyproject.toml", "toml"), ("clconv_example.py", "python")):
        shown = _block_after(text, f"`plugins/clconv-example/{name}`:", lang)
        assert shown == (PLUGINS / "clconv-example" / name).read_text().rstrip("\n"), (
            f"docs/writing-a-plugin.md shows an outdated plugins/clconv-example/{name}"
        )


def test_the_guide_covers_the_contract_and_the_conformance_commands():
    text = DOC.read_text()
    for needle in ("clconv conformance --backend example", "pytest -p clconv.conformance --clconv-backend example",
                   "[project.entry-points.clconv]", "supports", "cost", "workspace_bytes", "prepare", "compute",
                   "skip.txt", "xfail.txt"):
        assert needle in text, needle
