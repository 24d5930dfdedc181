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
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
FIGURES = "experiments/figures"
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


def on_files(files: Files, *, config: Any) -> Files:
    for path in sorted((ROOT / FIGURES).glob("*.png")):
        files.append(
            File(
                f"{FIGURES}/{path.name}",
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files


def on_page_markdown(markdown: str, *, page: Any, **kwargs: Any) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, _cli_help())
    if README in markdown:
        readme = (ROOT / "README.md").read_text(encoding="utf-8").replace("](docs/", "](")
        markdown = markdown.replace(README, readme)
    # from docs/<dir>/page.md the repository's experiments/figures is ../../experiments/...;
    # in the site the copy is at <site>/experiments/figures, one level less deep
    depth = page.file.src_uri.count("/")
    return markdown.replace("../" * (depth + 1) + FIGURES + "/", "../" * depth + FIGURES + "/")
