"""A griffe extension (mkdocs.yml, mkdocstrings ``extensions:``) that lets the docstrings
stay plain Google style with the reST inline markup they use, and still render as Markdown:

- ``:func:`name```, ``:class:``, ``:data:``, ``:meth:`Class.method``` and ``:mod:`` become
  links to the reference when they name a public object (one in a subpackage's
  ``__all__``, found by name alone or as ``jaxinit.<name>``), code spans otherwise;
- ``:math:`expr``` becomes a code span, a ``.. math::`` block a ``text`` code block (the
  site renders no LaTeX: that would need a script from the web);
- a run of doctest lines (``>>>`` up to the next blank line) becomes a ``pycon`` code block
  wherever it stands, so Markdown never reads ``>>>`` as a quote or ``[...]`` as a link;
- a paragraph ending in reST's ``::`` ends in ``:``.

The docstrings themselves are unchanged; only what the site shows is.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path
from typing import Any

import griffe

_ROLE = re.compile(r":(func|class|meth|mod|attr|data|obj|exc|math):`~?\.?([^`]+)`")
_PACKAGE = Path(__file__).resolve().parents[1] / "jaxinit"
_SUBPACKAGES = ("initializers", "rules", "study", "theory")


@functools.cache
def _public() -> dict[str, str]:
    """Public name -> the path the reference documents it under (``jaxinit.rules.reinit``),
    read from each subpackage's literal ``__all__`` (no import)."""
    paths = {"use_cpu_cores": "jaxinit.cli.use_cpu_cores"}
    for sub in _SUBPACKAGES:
        tree = ast.parse((_PACKAGE / sub / "__init__.py").read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            ):
                try:
                    names = ast.literal_eval(node.value)
                except ValueError:  # not a literal list: its names stay code spans
                    continue
                for name in names:
                    paths.setdefault(name, f"jaxinit.{sub}.{name}")
    return paths


def _role(match: re.Match[str]) -> str:
    kind, text = match.group(1), match.group(2)
    if kind == "mod":
        if text == "jaxinit" or text.removeprefix("jaxinit.") in _SUBPACKAGES:
            return f"[`{text}`][{text}]"
        return f"`{text}`"
    if kind in ("func", "class", "data", "meth"):
        head, _, rest = text.removeprefix("jaxinit.").partition(".")
        path = _public().get(head)
        if path is not None:
            return f"[`{text}`][{path}{'.' + rest if rest else ''}]"
    return f"`{text}`"


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
        out.append(_ROLE.sub(_role, line))
        i += 1
    return "\n".join(out)


class DocstringMarkdown(griffe.Extension):
    """Rewrite every docstring's reST inline markup and doctest runs as Markdown."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _to_markdown(obj.docstring.value)
