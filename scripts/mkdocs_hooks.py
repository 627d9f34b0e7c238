"""MkDocs hooks of the documentation site (mkdocs.yml ``hooks:``) and its griffe extension.

What the site shows that the code knows is generated at build time, so it cannot go stale:

- ``<!-- pyswoole:events -->``: the table of events and the arguments each callback gets
  (``pyswoole.server.events.EVENTS``); the page must have a ``### `name` `` section for
  every event, else the build fails.
- ``<!-- pyswoole:settings -->``: the settings tables (``pyswoole.server.settings.describe()``,
  the same text as the README's).
- ``<!-- pyswoole:constants -->``: every name of ``pyswoole.constants.__all__`` with its value.
- ``<!-- pyswoole:cli-help -->``: ``pyswoole --help``.

Links from a page to a file of the repository outside ``docs/`` (``../examples/echo.py``,
``../bench/README.md``) are checked (a missing file fails the build) and point at a page
generated from that file (``repo/<path>.md``: Markdown included, source shown as code).

Every public class of ``pyswoole.__all__`` and every public method or property that the API
reference renders (the mkdocstrings ``filters`` of mkdocs.yml) must have a docstring: one
that has none is a warning, which ``mkdocs build --strict`` turns into a failure.

:class:`RstToMarkdown` (a griffe extension, mkdocs.yml ``extensions:``) turns the
reStructuredText idioms of the docstrings (``:class:`X```, ``::`` before a code block) into
Markdown.
"""

from __future__ import annotations

import functools
import logging
import os
import posixpath
import re
from pathlib import Path
from typing import Any

from griffe import Docstring, Extension, Object

log = logging.getLogger("mkdocs.hooks.pyswoole")

ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|data|exc|obj|const):`~?([^`]+)`")
LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(([^)\s]+)\)")
CODE_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
LANGUAGES = {
    ".py": "python",
    ".php": "php",
    ".sh": "sh",
    ".toml": "toml",
    ".yml": "yaml",
    ".yaml": "yaml",
    ".json": "json",
    ".html": "html",
    ".js": "js",
    ".css": "css",
    ".c": "c",
    ".h": "c",
    ".txt": "text",
    ".service": "ini",
    ".conf": "nginx",
}


# -- griffe: reStructuredText idioms of the docstrings -> Markdown ------------------------------


def rst_to_markdown(text: str) -> str:
    """``:class:`Frame``` -> ``Frame`` in backticks; a paragraph ending in ``::`` ends in ``:``
    (the indented block after it is a Markdown code block already)."""
    text = ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    return re.sub(r"(\S)::$", r"\1:", text, flags=re.M)


def comment_docstring(lines: list[str], lineno: int) -> str | None:
    """The ``#:`` comment lines right above line ``lineno`` (1-based), joined: the
    Sphinx-style attribute documentation the code uses (``#: the task id``)."""
    found: list[str] = []
    index = lineno - 2
    while index >= 0 and lines[index].lstrip().startswith("#:"):
        found.append(lines[index].lstrip()[2:].strip())
        index -= 1
    return " ".join(reversed(found)) or None


class RstToMarkdown(Extension):
    """Rewrite each docstring once, when griffe loads it; an attribute without one gets
    its ``#:`` comment."""

    def on_instance(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is None and obj.is_attribute and obj.lineno and obj.filepath:
            path = obj.filepath if isinstance(obj.filepath, Path) else obj.filepath[0]
            text = comment_docstring(_source_lines(Path(path)), obj.lineno)
            if text is not None:
                obj.docstring = Docstring(text, lineno=obj.lineno, parent=obj)
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)


@functools.cache
def _source_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


# -- generated blocks ---------------------------------------------------------------------------


def events_table() -> str:
    from pyswoole.server.events import EVENTS

    rows = ["| event | also spelt | Swoole | callback arguments |", "|---|---|---|---|"]
    for name, args in EVENTS.items():
        snake = re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()
        also = f"`{snake}`" if snake != name else ""
        swoole = "on" + name[0].upper() + name[1:]
        rows.append(
            f"| [`{name}`](#{name.lower()}) | {also} | `{swoole}` | `({', '.join(args)})` |"
        )
    return "\n".join(rows)


def settings_tables() -> str:
    from pyswoole.server.settings import describe

    return describe()


def constants_table() -> str:
    import pyswoole
    from pyswoole import constants

    rows = ["| name | value |", "|---|---|"]
    rows += [f"| `{name}` | `{getattr(constants, name)!r}` |" for name in constants.__all__]
    version = f"`pyswoole.__version__` is `{pyswoole.__version__!r}`."
    return f"{version}\n\n{len(constants.__all__)} constants:\n\n" + "\n".join(rows)


def cli_help() -> str:
    from pyswoole.cli import build_parser

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        text = build_parser().format_help()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old
    return f"```text\n{text.rstrip()}\n```"


BLOCKS = {
    "events": events_table,
    "settings": settings_tables,
    "constants": constants_table,
    "cli-help": cli_help,
}
BLOCK = re.compile(r"<!-- pyswoole:([a-z-]+) -->")


def expand_blocks(markdown: str, page: str) -> str:
    """Replace each ``<!-- pyswoole:NAME -->`` by its generated text."""

    def one(match: re.Match[str]) -> str:
        maker = BLOCKS.get(match.group(1))
        if maker is None:
            log.warning("%s: unknown generated block %r", page, match.group(1))
            return match.group(0)
        return maker()

    return BLOCK.sub(one, markdown)


def missing_event_sections(markdown: str) -> list[str]:
    """Events of ``EVENTS`` the events page has no ``### `name` `` section for."""
    from pyswoole.server.events import EVENTS

    return [name for name in EVENTS if f"### `{name}`" not in markdown]


# -- links to repository files outside docs/ ----------------------------------------------------


def repo_links(markdown: str, page_src: str, docs_dir: Path, root: Path) -> dict[str, str]:
    """{link target: repository-relative path} for the relative links of a page (outside its
    code blocks) that leave ``docs_dir``."""
    text = CODE_FENCE.sub("", markdown)
    found: dict[str, str] = {}
    for match in LINK.finditer(text):
        target = match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
            continue
        path = target.split("#", 1)[0]
        absolute = (docs_dir / posixpath.dirname(page_src) / path).resolve()
        if absolute.is_relative_to(docs_dir.resolve()):
            continue
        found[target] = absolute.relative_to(root.resolve()).as_posix()
    return found


def repo_page(path: str, root: Path) -> str:
    """The generated page showing a repository file."""
    file = root / path
    text = file.read_text(encoding="utf-8")
    if file.suffix == ".md":
        return text
    lang = LANGUAGES.get(file.suffix, "text")
    return f"# `{path}`\n\n```{lang}\n{text.rstrip()}\n```\n"


# -- missing docstrings ------------------------------------------------------------------------


def missing_docstrings(
    package: str, names: list[str], filters: list[str], paths: list[str]
) -> list[str]:
    """Paths of the objects ``names`` (of ``package``), and of their public methods and
    properties kept by ``filters`` (mkdocstrings' syntax: ``"!regex"`` excludes), that have
    no docstring. camelCase aliases (``getClientInfo = get_client_info``) are attributes,
    not checked; data attributes are described in their class's docstring."""
    import griffe

    root = griffe.load(package, search_paths=paths, resolve_aliases=False)
    exclude = [re.compile(f[1:]) for f in filters if f.startswith("!")]
    missing: list[str] = []
    for name in names:
        obj = root[name]
        obj = obj.final_target if obj.is_alias else obj
        if not obj.docstring or not obj.docstring.value.strip():
            missing.append(f"{package}.{name}")
        if not obj.is_class:
            continue
        for member_name, member in obj.all_members.items():
            if any(rx.search(member_name) for rx in exclude):
                continue
            target = member.final_target if member.is_alias else member
            if not (target.is_function or "property" in getattr(target, "labels", set())):
                continue
            if not target.path.startswith(f"{package}."):
                continue
            if not target.docstring or not target.docstring.value.strip():
                missing.append(f"{package}.{name}.{member_name} ({target.path})")
    return missing


# -- MkDocs events ------------------------------------------------------------------------------

_STATE: dict[str, Any] = {}


def _python_options(config: Any) -> dict[str, Any]:
    plugin = config["plugins"].get("mkdocstrings")
    handlers = plugin.config["handlers"] if plugin is not None else {}
    return dict(handlers.get("python", {}))


def on_config(config: Any) -> Any:
    root = Path(config["config_file_path"]).resolve().parent
    _STATE["root"] = root
    _STATE["docs_dir"] = Path(config["docs_dir"]).resolve()
    return config


def on_pre_build(config: Any) -> None:
    python = _python_options(config)
    if not python:
        return
    import pyswoole

    names = [
        n for n in pyswoole.__all__ if n not in pyswoole.constants.__all__ and n != "__version__"
    ]
    filters = list(python.get("options", {}).get("filters", ["!^_"]))
    paths = [str(_STATE["root"] / p) for p in python.get("paths", ["src"])]
    for path in missing_docstrings("pyswoole", names, filters, paths):
        log.warning("no docstring: %s (the API reference would leave it out)", path)


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    root, docs_dir = _STATE["root"], _STATE["docs_dir"]
    wanted: dict[str, str] = {}
    for file in list(files.documentation_pages()):
        markdown = Path(file.abs_src_path).read_text(encoding="utf-8")
        wanted.update(
            {path: path for path in repo_links(markdown, file.src_uri, docs_dir, root).values()}
        )
    for path in sorted(wanted):
        if not (root / path).is_file():
            continue  # reported by on_page_markdown, with the page that links to it
        files.append(File.generated(config, f"repo/{path}.md", content=repo_page(path, root)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    root, docs_dir = _STATE["root"], _STATE["docs_dir"]
    src = page.file.src_uri
    if src.startswith("repo/"):
        return markdown
    markdown = expand_blocks(markdown, src)
    if "<!-- pyswoole:events" in Path(page.file.abs_src_path or "").read_text(encoding="utf-8"):
        for name in missing_event_sections(markdown):
            log.warning("%s: no section for the event %r (### `%s`)", src, name, name)
    for target, path in repo_links(markdown, src, docs_dir, root).items():
        if not (root / path).is_file():
            log.warning("%s: the link %r points at %s, which does not exist", src, target, path)
            continue
        anchor = "#" + target.split("#", 1)[1] if "#" in target else ""
        new = posixpath.relpath(f"repo/{path}.md", posixpath.dirname(src) or ".") + anchor
        markdown = markdown.replace(f"]({target})", f"]({new})")
    return markdown
