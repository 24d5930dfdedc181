"""A griffe extension (mkdocs.yml, mkdocstrings ``extensions:``) that lets the docstrings
stay plain Google style with the reST inline markup they use, and still render as Markdown:

- ``:func:`name```, ``:class:``, ``:meth:``, ``:mod:``, ``:data:``, ... become code spans;
- ``:math:`expr``` becomes a code span, a ``.. math::`` block a ``text`` code block (the
  site renders no LaTeX: that would need a script from the web);
- a run of doctest lines (``>>>`` up to the next blank line) becomes a ``pycon`` code block
  wherever it stands, so Markdown never reads ``>>>`` as a quote or ``[...]`` as a link;
- a paragraph ending in reST's ``::`` ends in ``:``.

The docstrings themselves are unchanged; only what the site shows is.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc|math):`~?\.?([^`]+)`")


def _to_markdown(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith(">>>"):
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            if out and out[-1].strip():
                out.append("")
            out += [indent + "```pycon", *block, indent + "```", ""]
            continue
        if stripped.startswith(".. math::"):
            block = [stripped[len(".. math::") :].strip()]
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(indent + " ")):
                block.append(lines[i].strip())
                i += 1
            while block and not block[-1]:
                block.pop()
            out += [indent + "```text", *(indent + b for b in block if b), indent + "```", ""]
            continue
        if line.rstrip().endswith("::") and not stripped.startswith(".."):
            line = line.rstrip()[:-1]
        out.append(_ROLE.sub(r"`\1`", line))
        i += 1
    return "\n".join(out)


class DocstringMarkdown(griffe.Extension):
    """Rewrite every docstring's reST inline markup and doctest runs as Markdown."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _to_markdown(obj.docstring.value)
