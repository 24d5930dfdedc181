"""mkdocs hooks (mkdocs.yml ``hooks:``), run at build time, offline.

- ``<!-- jaxinit-cli-help -->`` in a page becomes the ``--help`` text of the ``jaxinit``
  command and of each of its subcommands, taken from the parser itself so the page cannot
  drift from the code.
- ``<!-- jaxinit-readme -->`` (docs/index.md) becomes the README, its links into ``docs/``
  made relative to the site, so the home page is the README and cannot drift from it.
- ``<!-- jaxinit-changelog -->`` (docs/changelog.md) becomes CHANGELOG.md (top level, where
  GitHub and pip users look for it), so the site's changelog is that file.
- The experiments' figures stay in ``experiments/figures/`` (the README shows them from
  there); the site gets a copy at ``experiments/figures/``, and a page's link to them,
  written relative to the page's own place in the repository (``../../experiments/...``
  from ``docs/guide/``, as GitHub shows it), is pointed at that copy.
- ``<!-- jaxinit-summary jaxinit.<subpackage> ... -->`` (docs/reference/*.md) becomes the
  page's summary by topic, as optax's reference has: one table per topic, a row per public
  name with the first sentence of its docstring. The page lists the names under each topic;
  a name that is not public is an error, and tests/test_docs.py checks that every public
  name has its row. ``<!-- jaxinit-cli-summary -->`` is the same table for the command's
  subcommands, their help taken from ``jaxinit --help``.
- The notebooks (``notebooks/*.ipynb``) join the site's files here; mkdocs-jupyter (mkdocs.yml)
  makes them pages, and a page's link to one is rewritten as the figures' are. nbconvert's page template loads MathJax and mermaid from a CDN when a
  notebook has formulas or diagrams; ours have neither, and the site fetches nothing, so
  those two scripts are taken out of the notebook pages (a notebook that needs them later
  would need a local copy of the script).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import re
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
FIGURES = "experiments/figures"
NOTEBOOKS = "notebooks"
MARKER = "<!-- jaxinit-cli-help -->"
README = "<!-- jaxinit-readme -->"
CHANGELOG = "<!-- jaxinit-changelog -->"
SUMMARY = re.compile(r"<!-- jaxinit-summary (jaxinit\.\w+)\n(.*?)-->", re.S)
CLI_SUMMARY = "<!-- jaxinit-cli-summary -->"


def _help(argv: list[str]) -> str:
    from jaxinit.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main([*argv, "--help"])
    return out.getvalue().rstrip()


def _cli_help() -> str:
    top = _help([])
    # argparse lists the subcommands as {a,b,c} in the usage line
    found = re.search(r"\{([\w,-]+)\}", top)
    if found is None:
        raise RuntimeError(f"docs/hooks.py: no subcommands found in `jaxinit --help`:\n{top}")
    parts = ["## `jaxinit`", "", "```text", top, "```"]
    for name in found.group(1).split(","):
        parts += ["", f"## `jaxinit {name}`", "", "```text", _help([name]), "```"]
    return "\n".join(parts)


@functools.cache
def _markdown() -> Any:
    """docs/_griffe_markdown.py (not importable by name: docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "_griffe_markdown", ROOT / "docs" / "_griffe_markdown.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def _griffe(package: str) -> Any:
    import griffe

    return griffe.load(package, search_paths=[str(ROOT)], resolve_aliases=False)


def _first_paragraph(package: str, name: str) -> str:
    """The first paragraph of ``package.name``'s docstring as one line of Markdown, read as
    mkdocstrings reads it (griffe: an assigned value's docstring is the string after it)."""
    docstring = _griffe(package)[name].docstring
    if docstring is None:
        raise RuntimeError(f"docs/hooks.py: {package}.{name} has no docstring for the summary")
    first = " ".join(docstring.value.strip().split("\n\n")[0].split())
    # its first sentence (a full stop before a capital; "et al. 2020" is not one)
    first = re.split(r"(?<=[\w)`'\"])\. (?=[A-Z])", first, maxsplit=1)[0].removesuffix(".") + "."
    return _markdown()._to_markdown(first).replace("|", "\\|")


def _table(rows: list[tuple[str, str]]) -> list[str]:
    return ["| name | what it is |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows), ""]


def _summary(match: re.Match[str]) -> str:
    package = match.group(1)
    public = set(importlib.import_module(package).__all__)
    parts: list[str] = []
    for line in match.group(2).strip().splitlines():
        topic, _, names = line.partition(":")
        unknown = [n for n in names.split() if n not in public]
        if unknown:
            raise RuntimeError(f"docs/hooks.py: not public in {package}: {unknown} ({topic})")
        rows = [(f"[`{n}`][{package}.{n}]", _first_paragraph(package, n)) for n in names.split()]
        parts += [f"**{topic.strip()}**", "", *_table(rows)]
    # md_in_html: the class lets docs/stylesheets/extra.css keep the names on one line
    return "\n".join(['<div class="jaxinit-summary" markdown>', "", *parts, "</div>"])


def _cli_summary() -> str:
    top = _help([])
    found = re.search(r"\{([\w,-]+)\}", top)
    assert found is not None  # _cli_help says so when it is not
    commands = found.group(1).split(",")
    helps: dict[str, list[str]] = {}
    current = None
    for line in top.splitlines():
        words = line.split(maxsplit=1)
        if words and words[0] in commands and line.startswith("    ") and len(words) == 2:
            current = words[0]
            helps[current] = [words[1]]
        elif current and line.startswith(" " * 8) and line.strip():
            helps[current].append(line.strip())
        else:
            current = None
    rows = [(f"[`jaxinit {c}`](#jaxinit-{c})", " ".join(helps.get(c, []))) for c in commands]
    return "\n".join(['<div class="jaxinit-summary" markdown>', "", *_table(rows), "</div>"])


# before mkdocs-jupyter's on_files (default priority 0), which turns the notebooks added
# here into pages
@event_priority(50)
def on_files(files: Files, *, config: Any) -> Files:
    paths = [*sorted((ROOT / FIGURES).glob("*.png")), *sorted((ROOT / NOTEBOOKS).glob("*.ipynb"))]
    for path in paths:
        files.append(
            File(
                path.relative_to(ROOT).as_posix(),
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files


_CDN_SCRIPTS = re.compile(
    r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->"
    r"|<script type=\"module\">(?:(?!</script>).)*?jp-Mermaid.*?</script>",
    re.S,
)


def on_page_content(html: str, *, page: Any, **kwargs: Any) -> str:
    """A notebook's page starts with a link to its ``.ipynb`` (mkdocs-jupyter's
    ``include_source`` puts the file beside the page)."""
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    name = page.file.src_uri.rsplit("/", 1)[-1]
    link = (
        f'<p class="jaxinit-notebook-source">As committed, outputs included (not run by this'
        f' site\'s build). <a href="{name}" download>Download {name}</a> to run it.</p>'
    )
    return link + html


def on_post_page(html: str, *, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri.endswith(".ipynb"):
        html, found = _CDN_SCRIPTS.subn("", html)
        if found != 2:
            raise RuntimeError(
                f"docs/hooks.py: expected nbconvert's MathJax and mermaid scripts in"
                f" {page.file.src_uri}, found {found}: has the template changed?"
            )
    return html


def on_page_markdown(markdown: str, *, page: Any, **kwargs: Any) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, _cli_help())
    markdown = SUMMARY.sub(_summary, markdown)
    if CLI_SUMMARY in markdown:
        markdown = markdown.replace(CLI_SUMMARY, _cli_summary())
    if CHANGELOG in markdown:
        markdown = markdown.replace(
            CHANGELOG, (ROOT / "CHANGELOG.md").read_text(encoding="utf-8").replace("](docs/", "](")
        )
    if README in markdown:
        readme = (ROOT / "README.md").read_text(encoding="utf-8").replace("](docs/", "](")
        readme = readme.replace("](CHANGELOG.md)", "](changelog.md)")  # docs/changelog.md
        markdown = markdown.replace(README, readme)
    # from docs/<dir>/page.md the repository's experiments/figures is ../../experiments/...;
    # in the site the copy is at <site>/experiments/figures, one level less deep
    # (and the notebooks likewise)
    depth = page.file.src_uri.count("/")
    for folder in (FIGURES, NOTEBOOKS):
        markdown = markdown.replace(
            "../" * (depth + 1) + folder + "/", "../" * depth + folder + "/"
        )
    return markdown
