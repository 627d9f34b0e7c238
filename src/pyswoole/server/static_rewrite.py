"""``url_rewrite_rules``: Swoole 6.2's URL rewriting for the static file handler.

What Swoole does (``Server::set`` in ext-src/swoole_server.cc reads an array of
``pattern => replacement``, each a string, an error otherwise; ``Server::add_rewrite_rule``
keeps them in order; ``Server::apply_rewrite_rules(StaticHandler *)`` applies them to the
static handler only):

* A rule rewrites the path the static handler looks up under ``document_root``; the
  request itself is not changed: when the rewritten path is not a file to serve,
  ``on("request")`` gets the request as the client sent it (``request_uri`` unchanged), as
  Swoole dispatches the original request buffer to the worker.
* Rules are tried in the order given; the first that matches wins (one rewrite, no chain).
* Two forms of pattern:

  - ``"/old/"``: a prefix of the path.  The prefix is replaced, the rest of the path kept:
    ``{"/static/v123/": "/static/"}`` serves ``/static/v123/app.js`` from
    ``document_root/static/app.js``.
  - ``"~regex~"``: a regular expression between ``~`` delimiters, searched in the path; the
    part it matches is replaced, with ``$1``/``${1}`` (a group), ``$0``/``$&`` (the whole
    match) and ``$$`` (a dollar) in the replacement:
    ``{"~^/user/(\\d+)$~": "/profiles/$1.html"}``.

* What is matched is the request target's path, still percent-encoded, without the query
  string or fragment (Swoole's static handler drops them too); the query of the request
  does not reach the file lookup.
* ``static_handler_locations`` are checked against the rewritten path (the rewrite comes
  first, as in nginx: rewrite, then location).

Where pyswoole differs, and why:

* The regular expressions are Python's (``re``), not C++'s ``std::regex``: the same syntax
  for everything a URL pattern needs (classes, groups, anchors, alternation).
* A pattern or replacement that cannot work is a :class:`ConfigError` at ``set()``: an
  empty pattern, a prefix or a prefix's replacement not starting with ``/`` (a path always
  does), a regular expression that does not compile, a replacement naming a group the
  expression does not have.
* Safety: the rewritten path goes through every check an unrewritten one does (``..`` in
  any encoding, encoded slashes, NUL, backslashes: 403; the real path of what is opened
  must be inside ``document_root``), so no rule, and no captured piece of a client's URL,
  can make the handler serve a file outside ``document_root``.  A regular expression's
  result that is not a path (no leading ``/``) is not static: ``on("request")`` gets it.

Cost: none when the setting is empty (the handler keeps ``rules`` as None and checks it
once per bodiless request); with rules, one ``startswith`` or one regex search per rule
until the first match.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["RewriteRules", "check_rules"]

#: ``$$``, ``$&``, ``${n}``, ``$n`` (one or two digits) in a replacement
_REFERENCE = re.compile(r"\$(?:(\$)|(&)|\{(\d+)\}|(\d{1,2}))")


def _is_regex(pattern: str) -> bool:
    return len(pattern) >= 2 and pattern[0] == "~" and pattern[-1] == "~"


def _template(replacement: str, groups: int) -> tuple[tuple[str | int, ...], str | None]:
    """The replacement as literal pieces and group numbers, or a problem."""
    pieces: list[str | int] = []
    at = 0
    for ref in _REFERENCE.finditer(replacement):
        pieces.append(replacement[at : ref.start()])
        at = ref.end()
        dollar, whole, braced, digits = ref.groups()
        if dollar:
            pieces.append("$")
        elif whole:
            pieces.append(0)
        elif braced is not None:
            if int(braced) > groups:
                return (), f"{replacement!r} names group {braced}: the pattern has {groups}"
            pieces.append(int(braced))
        else:
            number = int(digits)
            if number > groups and len(digits) == 2 and int(digits[0]) <= groups:
                # ECMAScript's rule: "$12" with one group is group 1, then "2"
                pieces.append(int(digits[0]))
                pieces.append(digits[1])
            elif number > groups:
                return (), f"{replacement!r} names group {number}: the pattern has {groups}"
            else:
                pieces.append(number)
    pieces.append(replacement[at:])
    return tuple(p for p in pieces if p != ""), None


class RewriteRules:
    """The compiled rules of one ``url_rewrite_rules`` value, applied in order."""

    __slots__ = ("_rules",)

    def __init__(self, rules: dict[str, str]) -> None:
        compiled: list[tuple[str, re.Pattern[str] | None, str, tuple[str | int, ...]]] = []
        for pattern, replacement in rules.items():
            if _is_regex(pattern):
                regex = re.compile(pattern[1:-1])
                template, _ = _template(replacement, regex.groups)
                compiled.append((pattern, regex, replacement, template))
            else:
                compiled.append((pattern, None, replacement, ()))
        self._rules = tuple(compiled)

    def __len__(self) -> int:
        return len(self._rules)

    def apply(self, path: str) -> str:
        """``path`` rewritten by the first rule that matches it (unchanged if none does)."""
        for prefix, regex, replacement, template in self._rules:
            if regex is None:
                if path.startswith(prefix):
                    return replacement + path[len(prefix) :]
                continue
            found = regex.search(path)
            if found is not None:
                expanded = "".join(
                    piece if isinstance(piece, str) else (found.group(piece) or "")
                    for piece in template
                )
                return path[: found.start()] + expanded + path[found.end() :]
        return path


def check_rules(value: Any) -> str | None:
    """``set()``'s check of a ``url_rewrite_rules`` value: what is wrong with it, or None."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return "must be a dict of pattern -> replacement"
    for pattern, replacement in value.items():
        if not isinstance(pattern, str) or not isinstance(replacement, str):
            return "patterns and replacements must be strings"
        if not pattern:
            return "a pattern must not be empty"
        if _is_regex(pattern):
            try:
                regex = re.compile(pattern[1:-1])
            except re.error as exc:
                return f"{pattern!r} is not a regular expression: {exc}"
            _, problem = _template(replacement, regex.groups)
            if problem:
                return problem
        elif not pattern.startswith("/"):
            return f"{pattern!r}: a prefix must start with '/' (or write a regex as '~...~')"
        elif not replacement.startswith("/"):
            return f"{pattern!r}: the replacement of a prefix must start with '/'"
    return None
