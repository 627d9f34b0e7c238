"""The documentation site (mkdocs.yml, docs/, scripts/mkdocs_hooks.py).

``mkdocs build --strict`` must pass: a broken link or anchor, a link to a repository file
that does not exist, an event without its section or a public API object without a
docstring fails it (the hooks turn each into a warning, ``--strict`` into a failure). The
API reference must name every public name of ``pyswoole.__all__``; the generated pages
must hold what the code declares (events, settings, constants, ``--help``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import pyswoole
from pyswoole import constants
from pyswoole.server.events import EVENTS
from pyswoole.server.setting_keys import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference"
BUILD_TIMEOUT = 50.0  # seconds; the build takes ~5


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "scripts/mkdocs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mkdocs(config: Path, site: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = _mkdocs(ROOT / "mkdocs.yml", out, ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def _page(site: Path, name: str) -> str:
    return (site / name / "index.html").read_text(encoding="utf-8")


def test_reference_has_a_block_for_every_public_name() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in REFERENCE.glob("*.md"))
    documented = set(re.findall(r"^::: pyswoole\.(\w+)\s*$", text, re.M))
    public = {n for n in pyswoole.__all__ if n not in constants.__all__ and n != "__version__"}
    assert public - documented == set()
    assert "<!-- pyswoole:constants -->" in (REFERENCE / "constants.md").read_text()


def test_strict_build_renders_every_public_name(site: Path) -> None:
    html = "".join(
        (site / "reference" / p.stem / "index.html").read_text(encoding="utf-8")
        for p in REFERENCE.glob("*.md")
        if p.stem != "index"
    )
    for name in pyswoole.__all__:
        if name in constants.__all__ or name == "__version__":
            continue
        assert f'id="pyswoole.{name}"' in html, name
    # the methods people call most, from the mixins of Server, are rendered with their text
    for method in ("WebSocketServer.push", "Server.task", "Server.get_client_info", "Table.column"):
        assert f'id="pyswoole.{method}"' in html, method


def test_constants_page_lists_every_constant_with_its_value(site: Path) -> None:
    page = _page(site, "reference/constants")
    for name in constants.__all__:
        value = getattr(constants, name)
        assert re.search(rf"<code>{name}</code></td>\s*<td><code>{re.escape(repr(value))}", page), (
            name
        )
    assert pyswoole.__version__ in page


def test_generated_pages_follow_the_code(site: Path) -> None:
    events = _page(site, "events")
    for name, args in EVENTS.items():
        assert f'id="{name.lower()}"' in events, name  # its own section
        assert f"({', '.join(args)})" in events, name  # its arguments in the table
    settings = _page(site, "settings")
    for key in SETTINGS:
        assert f"<code>{key}</code>" in settings, key
    cli = _page(site, "cli")
    assert "--reload-dir" in cli and "--task-workers" in cli


def test_links_to_repository_files_become_pages(site: Path) -> None:
    porting = _page(site, "porting")
    assert 'href="../repo/examples/porting_chat.py/"' in porting
    shown = _page(site, "repo/examples/porting_chat.py")
    assert "WebSocketServer" in shown
    bench = _page(site, "repo/bench/README.md")
    assert "<h1" in bench and "Benchmarks" in bench


def _mini_site(tmp_path: Path, page: str) -> Path:
    """A site with the hooks and one page (no mkdocstrings: fast)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text(textwrap.dedent(page))
    (tmp_path / "real.py").write_text("x = 1\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text(
        textwrap.dedent(f"""\
            site_name: t
            docs_dir: docs
            hooks: [{ROOT / "scripts/mkdocs_hooks.py"}]
            validation: {{anchors: warn, unrecognized_links: warn}}
            """)
    )
    return config


def test_mini_site_with_good_links_builds(tmp_path: Path) -> None:
    config = _mini_site(tmp_path, "# A\n\n[code](../real.py) and [me](#a)\n")
    result = _mkdocs(config, tmp_path / "site", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site/repo/real.py/index.html").is_file()


@pytest.mark.parametrize(
    ("page", "complaint"),
    [
        ("# A\n\n[gone](../missing.py)\n", "which does not exist"),
        ("# A\n\n[gone](nowhere.md)\n", "nowhere.md"),
        ("# A\n\n[gone](#no-such-heading)\n", "no-such-heading"),
        ("# A\n\n<!-- pyswoole:nonsense -->\n", "unknown generated block"),
        ("# A\n\n<!-- pyswoole:events -->\n", "no section for the event"),
    ],
)
def test_strict_build_fails_on_a_broken_page(tmp_path: Path, page: str, complaint: str) -> None:
    config = _mini_site(tmp_path, page)
    result = _mkdocs(config, tmp_path / "site", tmp_path)
    assert result.returncode != 0
    assert complaint in result.stdout + result.stderr


def test_missing_docstrings_are_found(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent('''\
            class Good:
                """Documented."""

                def method(self) -> None:
                    """Documented."""

                def _private(self) -> None:
                    pass

                def camelAlias(self) -> None:
                    pass


            class Bad:
                """Documented, but not its method nor its property."""

                def method(self) -> None:
                    pass

                @property
                def value(self) -> int:
                    return 1


            class Bare:
                pass
            ''')
    )
    found = _hooks().missing_docstrings(
        "pkg", ["Good", "Bad", "Bare"], ["!^_", "!^[a-z]+[A-Z]"], [str(tmp_path)]
    )
    assert sorted(found) == [
        "pkg.Bad.method (pkg.Bad.method)",
        "pkg.Bad.value (pkg.Bad.value)",
        "pkg.Bare",
    ]


def test_rst_roles_become_markdown() -> None:
    hooks = _hooks()
    text = "See :class:`Frame` and :meth:`~pyswoole.Server.push`, then::\n\n    code"
    assert (
        hooks.rst_to_markdown(text) == "See `Frame` and `pyswoole.Server.push`, then:\n\n    code"
    )


def test_attribute_comments_become_docstrings(site: Path) -> None:
    lines = ["x = 0", "    #: the task id", "    #: (what task() returned)", "    self.id = 1"]
    assert _hooks().comment_docstring(lines, 4) == "the task id (what task() returned)"
    assert _hooks().comment_docstring(lines, 1) is None
    # Task's attributes are documented by #: comments in the code; Request's by its docstring
    tasks = _page(site, "reference/tasks-processes")
    assert 'id="pyswoole.Task.worker_id"' in tasks and "the worker that sent the task" in tasks
    assert "remote_addr" in _page(site, "reference/http-websocket")
