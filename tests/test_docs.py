"""The documentation site: every page is reachable from the nav, the README stays short and
its links land on pages that exist. (`make test` builds the site with `mkdocs --strict`.)"""
from __future__ import annotations

import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _nav_pages(entries: list) -> list[str]:
    pages = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages.extend(_nav_pages(value) if isinstance(value, list) else [value])
    return pages


def test_every_docs_page_is_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    nav = _nav_pages(config["nav"])
    files = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert len(files) >= 18, files
    assert sorted(nav) == files, {"not in the nav": sorted(set(files) - set(nav)),
                                  "in the nav, no file": sorted(set(nav) - set(files))}
    assert len(nav) == len(set(nav)), "a page is listed twice in the nav"


def test_readme_is_short_and_links_to_existing_pages() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 200
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", readme)
    assert len(links) >= 12, links
    for link in links:
        assert (ROOT / link).is_file(), link
    linked = {pathlib.Path(link).relative_to("docs").as_posix() for link in links}
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")} - {"index.md"}
    assert pages <= linked, f"pages the README does not link: {sorted(pages - linked)}"
