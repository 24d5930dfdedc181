"""Plain-text tables and paragraphs that fit the terminal (or ``COLUMNS``), drawn with rich
(installed with flax) without colour or markup, so they read the same in a file."""

from __future__ import annotations

import io
import math
import re
import shutil
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


def cell(value: object, fmt: str = ".3g") -> str:
    """A table cell: numbers formatted with ``fmt``, NaN (alone or inside a text such as
    ``"nan [nan, nan]"``) as "—"."""
    if isinstance(value, float | int) and not isinstance(value, bool):
        return MISSING if isinstance(value, float) and math.isnan(value) else format(value, fmt)
    return _NAN.sub(MISSING, str(value))


def table(header: Sequence[str], rows: Sequence[Sequence[object]], width: int | None = None) -> str:
    """``rows`` under ``header`` as text at most ``width`` characters wide (see
    :func:`terminal_width`): columns share the width and long cells wrap inside them."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    width = terminal_width(width)
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="none")
    # The first column (names) is kept whole when it takes at most a third of the width.
    # (No min_width: rich overflows the width with one.)
    first = max([len(cell(r[0])) for r in rows] + [len(header[0])]) if header else 0
    for i, h in enumerate(header):
        t.add_column(Text(h), overflow="fold", no_wrap=i == 0 and first <= width // 3)
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


def paragraph(text: str, width: int | None = None, indent: str = "") -> str:
    """``text`` wrapped to the width (continuation lines indented by ``indent``; leading
    blank lines kept)."""
    body = text.lstrip("\n")
    wrapped = textwrap.fill(body, terminal_width(width), subsequent_indent=indent,
                            break_on_hyphens=False, break_long_words=False)  # fmt: skip
    return text[: len(text) - len(body)] + wrapped
