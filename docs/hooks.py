"""mkdocs hooks (mkdocs.yml ``hooks:``), run at build time, offline.

- ``<!-- jaxinit-cli-help -->`` in a page becomes the ``--help`` text of the ``jaxinit``
  command and of each of its subcommands, taken from the parser itself so the page cannot
  drift from the code.
- ``<!-- jaxinit-readme -->`` (docs/index.md) becomes the README, its links into ``docs/``
  made relative to the site, so the home page is the README and cannot drift from it.
- The experiments' figures stay in ``experiments/figures/`` (the README shows them from
  there); the site gets a copy at ``experiments/figures/``, and a page's link to them,
  written relative to the page's own place in the repository (``../../experiments/...``
  from ``docs/guide/``, as GitHub shows it), is pointed at that copy.
- The notebooks (``notebooks/*.ipynb``) join the site's files here; mkdocs-jupyter (mkdocs.yml)
  makes them pages, and a page's link to one is rewritten as the figures' are. nbconvert's page template loads MathJax and mermaid from a CDN when a
  notebook has formulas or diagrams; ours have neither, and the site fetches nothing, so
  those two scripts are taken out of the notebook pages (a notebook that needs them later
  would need a local copy of the script).
"""

from __future__ import annotations

import contextlib
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
    if README in markdown:
        readme = (ROOT / "README.md").read_text(encoding="utf-8").replace("](docs/", "](")
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
