"""Plain-text tables and paragraphs that fit the terminal (or ``COLUMNS``), drawn with rich
(installed with flax) without colour or markup, so they read the same in a file."""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Sequence

MISSING = "—"  # a value that is not a number (NaN) in a cell
_NAN = re.compile(r"(?<![\w.])[-+]?nan(?![\w])", re.IGNORECASE)


def terminal_width(width: int | None = None) -> int:
    """``width`` if given, else ``COLUMNS`` or the terminal's width (100 when the output is
    not a terminal)."""
    if width is not None:
        return max(int(width), 20)
    return max(shutil.get_terminal_size((100, 24)).columns, 20)


def _unbounded() -> bool:
    """No width was asked for: no ``COLUMNS`` and standard output is not a terminal (a file
    or a pipe), where a table reads best unwrapped."""
    return not os.environ.get("COLUMNS") and not sys.stdout.isatty()


def cell(value: object, fmt: str = ".3g") -> str:
    """A table cell: numbers formatted with ``fmt``, NaN (alone or inside a text such as
    ``"nan [nan, nan]"``) as "—"."""
    if isinstance(value, float | int) and not isinstance(value, bool):
        return MISSING if isinstance(value, float) and math.isnan(value) else format(value, fmt)
    return _NAN.sub(MISSING, str(value))


def table(header: Sequence[str], rows: Sequence[Sequence[object]], width: int | None = None) -> str:
    """``rows`` under ``header`` as text at most ``width`` characters wide (see
    :func:`terminal_width`; unwrapped when none is given and the output is not a terminal):
    columns share the width and long cells wrap between words inside them."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    texts = [[str(h)] + [cell(r[i]) for r in rows] for i, h in enumerate(header)]
    natural = sum(max(map(len, col)) for col in texts) + 3 * (len(header) - 1)
    width = natural if width is None and _unbounded() else terminal_width(width)
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="none")
    for h, w in zip(header, _widths(texts, width - 3 * (len(header) - 1)), strict=True):
        t.add_column(Text(h), overflow="fold", width=w)
    for r in rows:
        t.add_row(*(Text(cell(c)) for c in r))
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, force_terminal=False,
                      no_color=True, highlight=False, emoji=False, soft_wrap=False)  # fmt: skip
    console.print(t)
    lines = [ln.rstrip() for ln in out.getvalue().splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def _widths(columns: list[list[str]], room: int) -> list[int]:
    """Each column's width in ``room`` characters: its widest cell when all fit; else at
    least its longest word (so no number is split), the rest shared in proportion to what
    each still lacks; when even those do not fit, the longest words fold first."""
    natural = [max(len(c) for c in col) for col in columns]
    if sum(natural) <= room:
        return list(natural)
    longest = [max(len(w) for c in col for w in c.split() or [""]) for col in columns]
    spare = room - sum(longest)
    if spare < 0:  # words fold, the longest first: every column is capped at the widest
        # level that fits (numbers, short words stay whole); the first column (names) is
        # kept whole when it takes at most 40 % of the room
        keep = 1 if 5 * longest[0] <= 2 * room else 0
        rest, capped = room - keep * longest[0], longest[keep:]
        level = max((c for c in range(1, max(capped) + 1)
                     if sum(min(m, c) for m in capped) <= rest), default=1)  # fmt: skip
        return longest[:keep] + [min(m, level) for m in capped]
    lack = [n - m for n, m in zip(natural, longest, strict=True)]
    total = sum(lack)
    return [m + spare * d // total for m, d in zip(longest, lack, strict=True)]


def paragraph(text: str, width: int | None = None, indent: str = "") -> str:
    """``text`` wrapped to the width (continuation lines indented by ``indent``; leading
    blank lines kept)."""
    body = text.lstrip("\n")
    wrapped = textwrap.fill(body, terminal_width(width), subsequent_indent=indent,
                            break_on_hyphens=False, break_long_words=False)  # fmt: skip
    return text[: len(text) - len(body)] + wrapped
