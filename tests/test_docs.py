"""The documentation site (mkdocs.yml, docs/) builds with every warning an error, offline,
and its API reference documents every public name of every subpackage.

``mkdocs build --strict`` fails on a docstring mkdocstrings cannot parse (an argument that
is not in the signature, a malformed section), on a broken link between pages and on a
cross-reference that resolves to nothing. The doctests themselves are collected from
jaxinit/ by ``--doctest-modules`` (pyproject.toml), not here.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ["initializers", "rules", "stats", "study", "theory"]


def _nav_files(nav: list) -> set[str]:
    files: set[str] = set()
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            files |= _nav_files(value)
        else:
            files.add(value)
    return files


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["NO_MKDOCS_2_WARNING"] = "1"  # mkdocs-material's banner about MkDocs 2.0
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{log}"
    assert "WARNING" not in log, log
    return out


def test_every_page_is_in_the_nav() -> None:
    """A page left out of the nav is only an INFO message for mkdocs: check it here."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    in_nav = _nav_files(config["nav"])
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    # docs/hooks.py adds the notebooks (notebooks/*.ipynb) to the site's pages
    pages |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert pages - in_nav == set(), "pages missing from mkdocs.yml's nav"
    assert in_nav - pages == set(), "nav entries without a page"


def test_reference_documents_every_public_name(site: Path) -> None:
    for name in SUBPACKAGES:
        module = importlib.import_module(f"jaxinit.{name}")
        html = (site / "reference" / name / "index.html").read_text()
        anchors = set(re.findall(rf'id="jaxinit\.{name}\.(\w+)"', html))
        missing = sorted(set(module.__all__) - anchors)
        assert not missing, f"jaxinit.{name}: not in the reference: {missing}"


def test_docstring_markup_is_rendered(site: Path) -> None:
    """docs/_griffe_markdown.py turns every reST role into a link, code or MathML."""
    for name in SUBPACKAGES:
        html = (site / "reference" / name / "index.html").read_text()
        assert not re.search(r":(func|class|meth|mod|data|math):", html), name
        assert "<blockquote>" not in html, name  # a doctest line read as a quote
    assert "<math" in (site / "reference" / "initializers" / "index.html").read_text()


_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "wbr",
}
_IN_TEXT = {"p", "li", "td", "th", "dd", "dt", "h1", "h2", "h3", "h4", "h5", "h6"}


class _Layout(HTMLParser):
    """Where each inline formula stands (the tags around it) and the page's visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.torn: list[str] = []  # inline formulas outside any paragraph, item or cell
        self.text: list[str] = []
        self.tables = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables += 1
        if tag == "math" and dict(attrs).get("display") != "block":
            if not _IN_TEXT & set(self.stack):
                self.torn.append("/".join(self.stack[-4:]))
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass  # <br/>: nothing opened

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:  # close up to the matching tag (HTML may leave some open)
            while self.stack.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if "code" not in self.stack and "pre" not in self.stack:
            self.text.append(data)


def _layout(path: Path) -> _Layout:
    parser = _Layout()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_formulas_stay_in_their_sentences(site: Path) -> None:
    """An inline formula renders inside its paragraph (or list item, or table cell): a
    docstring line that starts with ``:math:`` must not become a block of its own, which
    ends the paragraph before it and starts a new one after it."""
    counted = 0
    for page in sorted(site.rglob("*.html")):
        layout = _layout(page)
        assert not layout.torn, f"{page.relative_to(site)}: formulas outside text: {layout.torn}"
        counted += page.read_text(encoding="utf-8").count("<math")
    assert counted > 100  # the reference's formulas were rendered, not dropped


def test_docstring_tables_are_tables(site: Path) -> None:
    """A reST simple table in a docstring (``calculate_gain``'s) renders as an HTML table,
    not as rows of ``=====`` text."""
    rule = re.compile(r"^\s*={3,}( +={3,})+\s*$", re.M)
    for page in sorted(site.rglob("*.html")):
        text = "".join(_layout(page).text)
        assert not rule.search(text), f"{page.relative_to(site)}: a table left as text"
    html = (site / "reference" / "initializers" / "index.html").read_text(encoding="utf-8")
    start = html.index('id="jaxinit.initializers.calculate_gain"')
    section = html[start : html.index('<div class="doc doc-object', start)]
    assert "<table>" in section and "<td>leaky_relu</td>" in section


def test_reference_pages_open_with_a_summary_by_topic(site: Path) -> None:
    """Each reference page starts with tables by topic (docs/hooks.py), one row per public
    name, linked to its entry below, described by a sentence: no name left out, none twice."""
    for name in SUBPACKAGES:
        module = importlib.import_module(f"jaxinit.{name}")
        html = (site / "reference" / name / "index.html").read_text(encoding="utf-8")
        summary = re.search(r'<div class="jaxinit-summary">(.*?)</div>', html, re.S)
        assert summary is not None, name
        rows = re.findall(r"<tr>\s*<td>(.*?)</td>\s*<td>(.*?)</td>", summary.group(1), re.S)
        linked = [re.search(rf'href="#jaxinit\.{name}\.(\w+)"', cell) for cell, _ in rows]
        names = [m.group(1) for m in linked if m is not None]
        assert len(names) == len(rows), f"jaxinit.{name}: a summary row without its link"
        assert sorted(names) == sorted(module.__all__), f"jaxinit.{name}: summary != __all__"
        assert all(text.strip().endswith(".") for _, text in rows), name
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    summary = re.search(r'<div class="jaxinit-summary">(.*?)</div>', cli, re.S)
    assert summary is not None
    for command in ("list", "compare", "propagate"):
        assert f'href="#jaxinit-{command}"><code>jaxinit {command}</code>' in summary.group(1)


def test_changelog_and_install_page_are_on_the_site(site: Path) -> None:
    """The site's changelog is CHANGELOG.md (docs/hooks.py includes it, it is not a copy),
    newest first; the install page says how a GPU user gets a CUDA build of jax."""
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    html = (site / "changelog" / "index.html").read_text(encoding="utf-8")
    dates = re.findall(r"^### (\d{4}-\d{2}-\d{2})", text, re.M)
    assert dates and dates == sorted(dates, reverse=True)
    for date in dates:
        assert f">{date}<" in html
    assert "jaxinit-changelog" not in html
    install = (site / "guide" / "install" / "index.html").read_text(encoding="utf-8")
    assert "jax[cuda12]" in install and "[experiments]" in install


def test_cli_page_shows_every_subcommand(site: Path) -> None:
    html = (site / "reference" / "cli" / "index.html").read_text()
    for command in ("list", "compare", "propagate"):
        assert f"usage: jaxinit {command}" in html
    assert "jaxinit-cli-help" not in html  # the hook replaced its marker


def test_site_fetches_nothing_at_view_time(site: Path) -> None:
    """No web fonts or scripts from a CDN: the site works where it is built, offline (the
    notebook pages included: nbconvert's template imports MathJax and mermaid from one)."""
    for page in sorted(site.rglob("*.html")):
        html = page.read_text(encoding="utf-8")
        assert "fonts.googleapis.com" not in html, page
        assert not re.search(r'<script[^>]+src="(https?://|")', html), page
        assert not re.search(r'import\("https?://', html), page


def test_notebooks_are_on_the_site_with_their_outputs(site: Path) -> None:
    """Each notebook is a page showing its committed outputs (the build does not run them):
    its figures as images, its printed tables; the Notebooks page links each one."""
    import nbformat

    guide = (site / "guide" / "notebooks" / "index.html").read_text(encoding="utf-8")
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        figures = sum("image/png" in o.get("data", {}) for o in outputs)
        page = site / "notebooks" / path.stem / "index.html"
        html = page.read_text(encoding="utf-8")
        assert html.count('src="data:image/png;base64,') == figures, path.name
        assert len(re.findall(r'class="[^"]*\bjp-OutputArea-output\b', html)) >= len(outputs) > 0, (
            path.name
        )
        assert (page.parent / path.name).read_bytes() == path.read_bytes()  # the download
        assert f'href="../../notebooks/{path.stem}/"' in guide, path.name


def _readme_blocks(kind: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(rf"```{kind}\n(.*?)```", text, re.S)


def test_readme_test_command_is_what_ci_runs() -> None:
    """The README's second command installs and runs exactly what .ci/run does."""
    bash = [b.strip() for b in _readme_blocks("bash")]
    main_job, tests = bash[0], bash[1]
    assert main_job.endswith('pip install -e ".[experiments]" && jaxinit compare')
    ci = (ROOT / ".ci" / "run").read_text()
    steps = [s.strip() for s in tests.split("&&")]
    assert 'pip install -e ".[test]"' in steps
    for step in ("ruff check .", "ruff format --check .", "python -m pytest -n 2 -q"):
        assert step in steps and step in ci


def test_readme_values_example() -> None:
    """The README's interactive (pycon) examples print what they show."""
    import doctest

    import jaxinit

    for i, block in enumerate(_readme_blocks("pycon")):
        test = doctest.DocTestParser().get_doctest(
            block, {"jaxinit": jaxinit}, f"README.md pycon block {i}", "README.md", 0
        )
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        runner.run(test)
        assert runner.failures == 0, f"README.md pycon block {i} failed (see above)"


def test_guide_pycon_examples() -> None:
    """The guide pages' interactive (pycon) examples print what they show (one so far:
    sweeping the learning rate while keeping momentum, docs/guide/sweeps.md; it trains a
    small study)."""
    import doctest

    import jaxinit

    pages = sorted((ROOT / "docs").rglob("*.md"))
    blocks = [
        (page, block)
        for page in pages
        for block in re.findall(r"```pycon\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    ]
    assert blocks
    for page, block in blocks:
        name = str(page.relative_to(ROOT))
        test = doctest.DocTestParser().get_doctest(block, {"jaxinit": jaxinit}, name, name, 0)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        runner.run(test)
        assert runner.failures == 0, f"{name}: a pycon example failed (see above)"


RULE_SETS = [
    "bert", "deepnet", "deepnorm_constants", "depth_scaled", "fixup", "gpt2", "mup", "recurrent",
    "rezero", "skipinit", "t_fixup", "torch_default_layer_rules", "torch_default_rules", "vit",
]  # fmt: skip


MEAN_FIELD = [
    "c_star", "chi", "correlation_map", "critical_gain", "critical_weight_variance",
    "length_map", "mean_field", "predict_propagation", "q_star",
]  # fmt: skip


def test_every_initializer_and_rule_set_has_an_example() -> None:
    """Each public function of jaxinit.initializers (every factory, the registry's
    functions, the fast path), each rule set and each mean-field function shows a ``>>>``
    example; --doctest-modules runs them."""
    import inspect

    import jaxinit.initializers as initializers
    import jaxinit.rules as rules
    import jaxinit.theory as theory

    functions = {
        name: obj
        for name in initializers.__all__
        if inspect.isfunction(obj := getattr(initializers, name))
    }
    assert len(functions) > 40
    functions |= {f"rules.{name}": getattr(rules, name) for name in RULE_SETS}
    functions |= {f"theory.{name}": getattr(theory, name) for name in MEAN_FIELD}
    missing = sorted(n for n, f in functions.items() if ">>>" not in (inspect.getdoc(f) or ""))
    assert not missing, f"no >>> example: {missing}"
