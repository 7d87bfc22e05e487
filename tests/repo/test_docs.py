"""The documentation: the site builds in strict mode (no broken link, anchor or
page), the README stays short, and every repository path the README and the
pages cite exists. No broker needed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support.cli import REPO

DOCS = REPO / "docs"
README = REPO / "README.md"
README_MAX_LINES = 300

# A cited path starts with one of the repository's top-level folders or is one of
# its top-level files; anything else in backticks (option names, /etc paths, URLs,
# log_name values, metric names) is not a repository path.
ROOT_DIRS = ("bench", "conf", "deploy", "docs", "mulog", "offsets", "packaging", "scripts", "shipper", "sink", "tests",
             ".ci")
ROOT_FILES = ("Makefile", "Dockerfile", "docker-compose.yml", "pyproject.toml", "constraints.txt", "mkdocs.yml",
              "README.md", ".gitignore")
# Folders the programs and the tools write at run time (git ignores them). The docs
# may name them and their sub-folders, but a file in them is nothing to cite: it is
# not in the repository (cite bench/results/*.json, not bench/work/results/*.json).
GENERATED = ("bench/work",)

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_PLACEHOLDER = re.compile(r"<[^<>\s][^<>]*>")
_TOKEN = re.compile(r"[^\s'\"`()\[\]{},;|=]+")
_ROOTED = re.compile(r"^(?:\./)?(?:(?:" + "|".join(re.escape(d) for d in ROOT_DIRS) + r")(?:/|$)|(?:"
                     + "|".join(re.escape(f) for f in ROOT_FILES) + r")$)")


def _candidates(text: str) -> list[str]:
    """Strings that look like repository paths: tokens of code blocks and inline code."""
    found = []
    chunks = [m.group(0) for m in _FENCE.finditer(text)]
    rest = _FENCE.sub("", text)
    chunks += [m.group(2) for m in _CODE_SPAN.finditer(rest)]
    for chunk in chunks:
        chunk = _PLACEHOLDER.sub("*", chunk)  # bench/results/<UTC time>-<rev>.json -> bench/results/*-*.json
        for tok in _TOKEN.findall(chunk):
            tok = re.sub(r":\d+$", "", tok.rstrip(".:"))  # file:line names the file
            if _ROOTED.match(tok):
                found.append(tok.removeprefix("./"))
    return found


def _link_targets(text: str, page: Path) -> list[str]:
    """Relative link targets of ``page``, as paths from the repository root."""
    out = []
    for m in _LINK.finditer(_FENCE.sub("", text)):
        target = m.group(1).split("#", 1)[0]
        if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("/"):
            continue  # an anchor of the same page, a URL, or an absolute link (mkdocs warns of those)
        path = Path(os.path.normpath(page.parent / target))
        out.append(str(path.relative_to(REPO)) if path.is_relative_to(REPO) else target)
    return out


def missing_paths(text: str, page: Path) -> list[str]:
    """The repository paths ``page`` (text ``text``) cites that are not there."""
    bad = []
    for path in _candidates(text) + _link_targets(text, page):
        stripped = path.rstrip("/")
        if any(stripped == g or stripped.startswith(g + "/") for g in GENERATED):
            if "." in Path(stripped).name:  # a file under a generated folder: not in the repository
                bad.append(path)
            continue
        if any(ch in stripped for ch in "*?["):
            if not any(REPO.glob(stripped)):
                bad.append(path)
        elif not (REPO / stripped).exists():
            bad.append(path)
    return sorted(set(bad))


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def test_the_site_builds_in_strict_mode(tmp_path):
    mkdocs = Path(sys.executable).parent / "mkdocs"
    assert mkdocs.exists(), f"{mkdocs} is missing: install the dev extras (pip install -e '.[dev]')"
    proc = subprocess.run([str(mkdocs), "build", "--strict", "-f", str(REPO / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").exists()
    for page in DOCS.glob("*.md"):
        assert (tmp_path / "site" / ("" if page.stem == "index" else page.stem) / "index.html").exists(), page


def test_the_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; at most {README_MAX_LINES} (move detail to docs/)"


def test_the_readme_links_every_page():
    text = README.read_text()
    unlinked = [p.name for p in DOCS.glob("*.md") if p.name != "index.md" and f"(docs/{p.name})" not in text]
    assert unlinked == []


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_cited_path_exists(page):
    assert missing_paths(page.read_text(), page) == []


def test_the_path_check_finds_what_is_not_there():
    page = DOCS / "made-up.md"
    text = """
See `scripts/kafka-local` and `deploy/systemd/mulog-nothing.service`, the results in
`bench/results/19990101T000000Z-0000000000.json` and `bench/work/results/x.json`,
[a link](../sink/no_such_module.py), `conf/settings/*.99.json`.

```sh
cp deploy/prometheus/mulog-rules.yml bench/peers/nothing.yaml /etc/mulog/
```

There: `sink/config.py:42`, `conf/settings/*.24.json`, `bench/`, [the README](../README.md).
Not paths: `/etc/mulog/shipper.yml`, `kafka.producer`, `log.YYYY-MM-DD`, `demo/output`,
`bench/work/peers/quix-venv`, `bench/results/<UTC time>-<rev>.json`, [home](index.md),
[out](https://example.org/x.md), `mtga_events_fixed_total{rule}`.
"""
    assert missing_paths(text, page) == sorted([
        "deploy/systemd/mulog-nothing.service",
        "bench/results/19990101T000000Z-0000000000.json",
        "bench/work/results/x.json",
        "sink/no_such_module.py",
        "conf/settings/*.99.json",
        "bench/peers/nothing.yaml",
    ])
