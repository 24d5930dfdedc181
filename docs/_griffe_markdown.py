"""A griffe extension (mkdocs.yml, mkdocstrings ``extensions:``) that lets the docstrings
stay plain Google style with the reST inline markup they use, and still render as Markdown:

- ``:func:`name```, ``:class:``, ``:data:``, ``:meth:`Class.method``` and ``:mod:`` become
  links to the reference when they name a public object (one in a subpackage's
  ``__all__``, found by name alone or as ``jaxinit.<name>``), code spans otherwise;
- ``:math:`expr``` and ``.. math::`` blocks become MathML (latex2mathml, at build time),
  which browsers render natively: no script, nothing fetched; an expression it cannot
  convert stays a code span. Inline MathML is wrapped in a ``<span class="math">``:
  Python-Markdown counts ``<math>`` as a block-level tag, so a bare one at the start of a
  line would end the paragraph there and tear the sentence in two;
- a reST simple table (rows between ``=====  =====`` rules) becomes a Markdown table;
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
from latex2mathml.converter import convert

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


def _mathml(latex: str, display: str = "inline") -> str | None:
    try:
        html = convert(latex, display=display)
    except Exception:  # latex2mathml raises many kinds; the expression stays code
        return None
    # Text between tags must not look like Markdown ([...] links, *emphasis*, `code`, a
    # table's | when the formula stands in a cell).
    html = re.sub(
        r">([^<]+)<",
        lambda m: ">" + re.sub(r"[\\[\]*_`|]", lambda c: f"&#{ord(c.group())};", m.group(1)) + "<",
        html,
    )
    return html if display == "block" else f'<span class="math">{html}</span>'


def _role(match: re.Match[str]) -> str:
    kind, text = match.group(1), " ".join(match.group(2).split())  # a role may wrap a line
    if kind == "math":
        return _mathml(text) or f"`{text}`"
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


_RULE = re.compile(r"^\s*=+( +=+)+\s*$")


def _simple_table(lines: list[str]) -> list[str]:
    """A reST simple table (``lines``: from its top rule to its bottom rule) as a Markdown
    table; the column edges are where the top rule's runs of ``=`` start."""
    rule = lines[0]
    indent = rule[: len(rule) - len(rule.lstrip())]
    starts = [m.start() for m in re.finditer(r"=+", rule)]
    edges = [*starts[1:], None]
    rules = [j for j, line in enumerate(lines) if _RULE.match(line)]
    rows = [
        [line[a:b].strip().replace("|", "\\|") for a, b in zip(starts, edges, strict=True)]
        for line in lines
        if line.strip() and not _RULE.match(line)
    ]
    # three rules: a header row between the first two; two: no header (Markdown needs one)
    n_header = rules[1] - 1 if len(rules) == 3 else 0
    header = [" ".join(col) for col in zip(*rows[:n_header], strict=True)] or [" "] * len(starts)
    table = [header, ["---"] * len(starts), *rows[n_header:]]
    return ["", *(indent + "| " + " | ".join(row) + " |" for row in table), ""]


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
        if _RULE.match(line):
            # the table ends at the first rule after its top one that the text leaves (a
            # blank line or the end follows)
            end = next(
                (
                    j
                    for j in range(i + 1, len(lines))
                    if _RULE.match(lines[j]) and (j + 1 == len(lines) or not lines[j + 1].strip())
                ),
                None,
            )
            if end is None:  # not a table: a lone rule stays text
                out.append(line)
                i += 1
                continue
            out += _simple_table(lines[i : end + 1])
            i = end + 1
            continue
        if stripped.startswith(".. math::"):
            block = [stripped[len(".. math::") :].strip()]
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(indent + " ")):
                block.append(lines[i].strip())
                i += 1
            while block and not block[-1]:
                block.pop()
            html = _mathml(" ".join(b for b in block if b), display="block")
            if html is None:
                out += [indent + "```text", *(indent + b for b in block if b), indent + "```"]
            else:
                out += ["", indent + html]
            out.append("")
            continue
        if line.rstrip().endswith("::") and not stripped.startswith(".."):
            line = line.rstrip()[:-1]
        out.append(line)
        i += 1
    return _ROLE.sub(_role, "\n".join(out))


class DocstringMarkdown(griffe.Extension):
    """Rewrite every docstring's reST inline markup and doctest runs as Markdown."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _to_markdown(obj.docstring.value)
