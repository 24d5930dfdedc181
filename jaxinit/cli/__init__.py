"""The ``jaxinit`` command line, the application on top of the library's layers.

Nothing in the library imports this package. ``jaxinit.cli.main`` parses the command line
(``_main.py``); :mod:`jaxinit.cli.compare` is the main job, ``jaxinit compare`` (its files,
report and Ctrl-C handling); the process-wide settings the command chooses
(:func:`use_cpu_cores`, :func:`process_settings`) are set here and nowhere else.

Public names:
  CompareConfig, format_summary, main, process_settings, run_compare, use_cpu_cores
"""

from typing import TYPE_CHECKING, Any

from jaxinit.cli._main import main as main
from jaxinit.cli._settings import process_settings as process_settings
from jaxinit.cli._settings import use_cpu_cores as use_cpu_cores

if TYPE_CHECKING:  # loaded on first use: the comparison imports the study layer
    from jaxinit.cli.compare import CompareConfig as CompareConfig
    from jaxinit.cli.compare import format_summary as format_summary
    from jaxinit.cli.compare import run_compare as run_compare

_COMPARE = ("CompareConfig", "format_summary", "run_compare")


def __getattr__(name: str) -> Any:
    if name in _COMPARE:
        from jaxinit.cli import compare

        return getattr(compare, name)
    raise AttributeError(f"module 'jaxinit.cli' has no attribute {name!r}")


__all__ = [
    "CompareConfig",
    "format_summary",
    "main",
    "process_settings",
    "run_compare",
    "use_cpu_cores",
]
