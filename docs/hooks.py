"""mkdocs hooks (mkdocs.yml ``hooks:``), run at build time, offline.

``<!-- jaxinit-cli-help -->`` in a page becomes the ``--help`` text of the ``jaxinit``
command and of each of its subcommands, taken from the parser itself so the page cannot
drift from the code.
"""

from __future__ import annotations

import contextlib
import io
import re

MARKER = "<!-- jaxinit-cli-help -->"


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


def on_page_markdown(markdown: str, **kwargs: object) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, _cli_help())
    return markdown
