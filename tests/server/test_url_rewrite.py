"""pyswoole.server.static_rewrite (``url_rewrite_rules``): the two rule forms, first match
wins, the replacement's references, set()'s checks -- and the static handler applying the
rules before every path check (nothing outside document_root, whatever the rule)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyswoole import ConfigError
from pyswoole.server.settings import Settings
from pyswoole.server.static import FORBIDDEN, NOT_FOUND, StaticFile, StaticHandler
from pyswoole.server.static_rewrite import RewriteRules, check_rules


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "public"
    (root / "static").mkdir(parents=True)
    (root / "static" / "app.js").write_text("js")
    (root / "profiles").mkdir()
    (root / "profiles" / "42.html").write_text("<p>42</p>")
    (root / "index.html").write_text("<h1>home</h1>")
    (tmp_path / "secret.txt").write_text("SECRET")
    return root


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/static/v123/app.js", "/static/app.js"),  # a prefix: replaced, the rest kept
        ("/static/v1234/app.js", "/static/v1234/app.js"),  # no rule matches: unchanged
        ("/Static/v123/app.js", "/Static/v123/app.js"),  # prefixes are case-sensitive
        ("/user/42", "/profiles/42.html"),  # a regex: $1
        ("/user/42/x", "/user/42/x"),  # anchored by the pattern itself
        ("/a/b/c", "/swapped/c/b"),  # ${n} and $n, the match replaced, the rest kept
        ("/cost/5", "/price$/5/cost/5"),  # $$ is a dollar, $& the whole match
        ("/dup/x", "/dup/x/dup/x"),  # $0 the whole match
    ],
)
def test_the_rule_forms(path: str, expected: str) -> None:
    rules = RewriteRules(
        {
            "/static/v123/": "/static/",
            r"~^/user/(\d+)$~": "/profiles/$1.html",
            "~^/a/(b)/(c)~": "/swapped/${2}/$1",
            r"~^/cost/\d~": "/price$$/5$&",
            "~^/dup/x$~": "$0$0",
        }
    )
    assert rules.apply(path) == expected


def test_the_first_matching_rule_wins_and_the_result_is_not_rewritten_again() -> None:
    rules = RewriteRules({"/a/": "/b/", "/b/": "/c/", "~^/a~": "/never"})
    assert rules.apply("/a/x") == "/b/x"  # not "/c/x", not "/never"
    assert rules.apply("/b/x") == "/c/x"
    assert len(rules) == 3


def test_an_unmatched_optional_group_is_empty_and_two_digit_references_follow_ecmascript() -> None:
    assert RewriteRules({"~^/p(/x)?/(\\w+)$~": "/q$1-$2"}).apply("/p/y") == "/q-y"
    # "$12" with one group: group 1 followed by "2"
    assert RewriteRules({"~^/(\\w+)$~": "/$12"}).apply("/z") == "/z2"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"": "/x"}, "must not be empty"),
        ({"old/": "/x"}, "a prefix must start with '/'"),
        ({"/old/": "new/"}, "the replacement of a prefix must start with '/'"),
        ({"~(unclosed~": "/x"}, "is not a regular expression"),
        ({"~^/(a)$~": "/$2"}, "names group 2: the pattern has 1"),
        ({"~^/(a)$~": "/${3}"}, "names group 3: the pattern has 1"),
        ({"/a": 1}, "must be strings"),
        (["/a", "/b"], "must be a dict"),
    ],
)
def test_set_refuses_rules_that_cannot_work(value: object, problem: str) -> None:
    assert problem in (check_rules(value) or "")
    with pytest.raises(ConfigError, match="'url_rewrite_rules'"):
        Settings().update({"url_rewrite_rules": value})


def test_the_setting_is_honoured_now() -> None:
    settings = Settings()
    settings.update({"url_rewrite_rules": {"/a/": "/b/", "~^/c$~": "/d"}})
    settings.check_startable()  # no longer fails at start()
    assert check_rules(None) is None and check_rules({}) is None


# -- the static handler --------------------------------------------------------------------


def resolved(static: StaticHandler, target: str) -> object:
    found = static.resolve(target)
    if isinstance(found, StaticFile):
        found.close()
        return Path(found.path).relative_to(static.root_real).as_posix()
    return found


def test_the_handler_serves_the_rewritten_path_and_ignores_the_query(site: Path) -> None:
    static = StaticHandler(
        str(site),
        rewrite_rules={"/static/v123/": "/static/", r"~^/user/(\d+)$~": "/profiles/$1.html"},
    )
    assert resolved(static, "/static/v123/app.js?cache=1") == "static/app.js"
    assert resolved(static, "/user/42") == "profiles/42.html"
    assert resolved(static, "/user/42?tab=x#top") == "profiles/42.html"
    assert resolved(static, "/user/7") is None  # rewritten, no such file: on("request")
    assert resolved(static, "/static/app.js") == "static/app.js"  # unrewritten paths still work


def test_no_rules_means_no_rewriting(site: Path) -> None:
    assert StaticHandler(str(site)).rules is None
    assert StaticHandler(str(site), rewrite_rules={}).rules is None


def test_locations_are_checked_on_the_rewritten_path(site: Path) -> None:
    static = StaticHandler(
        str(site), locations=["/static/"], rewrite_rules={"/assets/": "/static/"}
    )
    assert resolved(static, "/assets/app.js") == "static/app.js"
    assert resolved(static, "/assets/none.js") == NOT_FOUND  # a location matched: 404
    assert resolved(static, "/index.html") is None  # outside the locations


@pytest.mark.parametrize(
    ("rules", "target"),
    [
        ({r"~^/files/(.*)$~": "/static/$1"}, "/files/../../secret.txt"),
        ({r"~^/files/(.*)$~": "/static/$1"}, "/files/%2e%2e/%2e%2e/secret.txt"),
        ({r"~^/files/(.*)$~": "/static/$1"}, "/files/..%2f..%2fsecret.txt"),
        ({r"~^/files/(.*)$~": "/$1"}, "/files/..%5csecret.txt"),
        ({"/x/": "/../"}, "/x/secret.txt"),  # the rule itself climbs out
        ({r"~^/go$~": "/static/../../secret.txt"}, "/go"),
        ({r"~^/(.*)$~": "/$1%00"}, "/static/app.js"),
    ],
)
def test_no_rule_and_no_captured_piece_can_leave_the_root(
    site: Path, rules: dict[str, str], target: str
) -> None:
    assert resolved(StaticHandler(str(site), rewrite_rules=rules), target) == FORBIDDEN


def test_a_rewritten_symlink_out_of_the_root_is_forbidden(site: Path) -> None:
    (site / "static" / "out.txt").symlink_to(site.parent / "secret.txt")
    static = StaticHandler(str(site), rewrite_rules={"/o": "/static/out.txt"})
    assert resolved(static, "/o") == FORBIDDEN


def test_a_regex_result_that_is_not_a_path_is_not_static(site: Path) -> None:
    static = StaticHandler(str(site), rewrite_rules={r"~^/(\w+)$~": "$1"})
    assert resolved(static, "/index") is None
