"""server/proxies.py: who the client behind trusted proxies is, and which origins may open a
WebSocket (the parsing and the trust walk, without sockets; tests/integration/test_proxies.py
runs them on a real server)."""

from __future__ import annotations

import pytest

from pyswoole import ConfigError, HttpServer
from pyswoole.server.proxies import (
    OriginPolicy,
    TrustedProxies,
    check_origins,
    check_trusted,
    parse_address,
    parse_forwarded,
)

PEER = ("127.0.0.1", 40000)


def client(trusted: str | list[str], *headers: tuple[str, str], peer=PEER, order=None):
    proxies = TrustedProxies(trusted, order or ("x-forwarded-for", "forwarded", "x-real-ip"))
    return proxies.client(peer, list(headers))


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("192.0.2.1", ("192.0.2.1", 0)),
        (" 192.0.2.1:5555 ", ("192.0.2.1", 5555)),
        ("2001:db8::1", ("2001:db8::1", 0)),
        ("2001:DB8:0::1", ("2001:db8::1", 0)),
        ("[2001:db8::1]", ("2001:db8::1", 0)),
        ('"[2001:db8::1]:4711"', ("2001:db8::1", 4711)),
        ("::ffff:10.1.2.3", ("10.1.2.3", 0)),
        ("unknown", None),
        ("_hidden", None),
        ("192.0.2.1:http", None),
        ("192.0.2.1:70000", None),
        ("[2001:db8::1", None),
        ("[2001:db8::1]x", None),
        ("999.1.1.1", None),
        ("", None),
        ("fe80::1%eth0", None),
    ],
)
def test_parse_address(token: str, expected: tuple[str, int] | None) -> None:
    assert parse_address(token) == expected


def test_parse_forwarded_rfc7239_examples() -> None:
    # RFC 7239 section 4 and 7.1 examples, one field and several
    assert parse_forwarded(['for="_gazonk"']) == [None]
    assert parse_forwarded(['For="[2001:db8:cafe::17]:4711"']) == [("2001:db8:cafe::17", 4711)]
    assert parse_forwarded(["for=192.0.2.60;proto=http;by=203.0.113.43"]) == [("192.0.2.60", 0)]
    assert parse_forwarded(["for=192.0.2.43, for=198.51.100.17"]) == [
        ("192.0.2.43", 0),
        ("198.51.100.17", 0),
    ]
    assert parse_forwarded(["for=192.0.2.43", "for=198.51.100.17;by=x"]) == [
        ("192.0.2.43", 0),
        ("198.51.100.17", 0),
    ]
    assert parse_forwarded(["for=unknown, by=10.0.0.1, for=10.0.0.2"]) == [
        None,
        None,
        ("10.0.0.2", 0),
    ]
    # a quoted comma or semicolon does not cut; a malformed element has no address
    assert parse_forwarded(['host="a,b;c";for=192.0.2.9, for=10.0.0.5']) == [
        ("192.0.2.9", 0),
        ("10.0.0.5", 0),
    ]
    assert parse_forwarded(["for 192.0.2.1, for=10.0.0.5"]) == [None, ("10.0.0.5", 0)]


def test_untrusted_peer_is_the_client_whatever_it_sends() -> None:
    headers = [
        ("x-forwarded-for", "1.2.3.4"),
        ("forwarded", "for=5.6.7.8"),
        ("x-real-ip", "9.9.9.9"),
    ]
    assert client("10.0.0.0/8", *headers) == PEER
    assert TrustedProxies.from_settings((), None) is None  # the default: nobody is trusted
    assert TrustedProxies.from_settings(" , ", None) is None


def test_default_headers_are_x_forwarded_for_only() -> None:
    proxies = TrustedProxies.from_settings(["127.0.0.1"], None)
    assert proxies is not None
    assert proxies.client(PEER, [("x-real-ip", "9.9.9.9"), ("forwarded", "for=9.9.9.9")]) == PEER
    assert proxies.client(PEER, [("x-forwarded-for", "203.0.113.1")]) == ("203.0.113.1", 0)
    server = HttpServer("127.0.0.1", 0)
    assert server._settings.get_value("proxy_headers") == ("x-forwarded-for",)


def test_trusted_peer_names_the_client() -> None:
    assert client("127.0.0.1", ("x-forwarded-for", "203.0.113.7")) == ("203.0.113.7", 0)
    assert client(["127.0.0.0/8"], ("x-forwarded-for", "203.0.113.7:1234")) == (
        "203.0.113.7",
        1234,
    )
    assert client("127.0.0.1", ("x-real-ip", "203.0.113.8")) == ("203.0.113.8", 0)
    assert client("127.0.0.1", ("forwarded", 'for="[2001:db8::5]:99"')) == ("2001:db8::5", 99)
    assert client("127.0.0.1") == PEER  # no header: the proxy itself
    assert client("*", ("x-real-ip", "198.51.100.1"), peer=("8.8.8.8", 1)) == ("198.51.100.1", 0)
    assert client("::ffff:127.0.0.1", ("x-real-ip", "198.51.100.1")) == ("198.51.100.1", 0)
    assert client(["::1"], ("x-real-ip", "198.51.100.1"), peer=("::ffff:127.0.0.1", 1)) == (
        "::ffff:127.0.0.1",
        1,
    )


def test_unix_socket_peer_is_trusted_only_when_listed() -> None:
    unix = ("", 0)
    assert client("127.0.0.1", ("x-real-ip", "198.51.100.1"), peer=unix) == unix
    assert client("unix", ("x-real-ip", "198.51.100.1"), peer=unix) == ("198.51.100.1", 0)


def test_chain_is_walked_from_the_right_skipping_trusted_hops() -> None:
    trusted = ["127.0.0.1", "10.0.0.0/8"]
    # the client forged "6.6.6.6"; 203.0.113.7 is the first hop no trusted proxy vouches past
    xff = ("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.1.1.1")
    assert client(trusted, xff) == ("203.0.113.7", 0)
    # repeated fields are one list (RFC 9110 section 5.3)
    assert client(
        trusted, ("x-forwarded-for", "6.6.6.6, 203.0.113.7"), ("x-forwarded-for", "10.2.2.2")
    ) == ("203.0.113.7", 0)
    # every hop trusted: the leftmost
    assert client(trusted, ("x-forwarded-for", "10.9.9.9, 10.1.1.1")) == ("10.9.9.9", 0)
    # a hop that is no address ends the walk at the last trusted hop
    assert client(trusted, ("x-forwarded-for", "203.0.113.7, garbage, 10.1.1.1")) == (
        "10.1.1.1",
        0,
    )
    assert client(trusted, ("x-forwarded-for", "junk")) == PEER
    assert client(trusted, ("forwarded", "for=6.6.6.6, for=203.0.113.9, for=10.3.3.3")) == (
        "203.0.113.9",
        0,
    )
    assert client(trusted, ("forwarded", 'for=203.0.113.9, for="_hidden"')) == PEER


def test_only_the_preferred_header_present_counts() -> None:
    headers = (("x-real-ip", "198.51.100.1"), ("x-forwarded-for", "203.0.113.7"))
    assert client("127.0.0.1", *headers) == ("203.0.113.7", 0)
    assert client("127.0.0.1", *headers, order=("x-real-ip",)) == ("198.51.100.1", 0)
    # a header the operator does not list is never believed
    assert client("127.0.0.1", ("x-forwarded-for", "203.0.113.7"), order=("forwarded",)) == PEER


def test_trust_decisions_are_cached_and_bounded() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    for i in range(5000):
        assert proxies.trusts(f"10.0.{i // 256}.{i % 256}")
    assert not proxies.trusts("11.0.0.1")
    assert len(proxies._cache) <= 4096


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8", "unix", "*"], True),
        ("127.0.0.1, 10.0.0.0/8", True),
        (["10.0.0.1/33"], False),
        (["proxy.local"], False),
        ([1], False),
    ],
)
def test_trusted_proxies_setting_is_checked(value, ok) -> None:
    assert (check_trusted(value) is None) is ok
    server = HttpServer("127.0.0.1", 0)
    if ok:
        server.set({"trusted_proxies": value})
    else:
        with pytest.raises(ConfigError, match="trusted_proxies"):
            server.set({"trusted_proxies": value})


def test_other_settings_are_checked() -> None:
    server = HttpServer("127.0.0.1", 0)
    with pytest.raises(ConfigError, match="proxy_headers"):
        server.set({"proxy_headers": ["x-client-ip"]})
    with pytest.raises(ConfigError, match="allowed_origins"):
        server.set({"allowed_origins": ["https://example.com/path"]})
    with pytest.raises(ConfigError, match="allowed_origins"):
        server.set({"allowed_origins": "https://example.com"})
    server.set({"allowed_origins": ["https://example.com:8443", "null", "http://*.test"]})
    assert check_origins(["example.com"]) is not None


def test_origin_policy() -> None:
    assert OriginPolicy.from_setting(()) is None
    assert OriginPolicy.from_setting(["https://a.test", "*"]) is None
    policy = OriginPolicy(
        ["https://app.example.com", "https://*.example.org", "http://x.test:8080"]
    )
    assert policy.allowed("https://app.example.com")
    assert policy.allowed("HTTPS://App.Example.COM")
    assert not policy.allowed("http://app.example.com")  # another scheme is another origin
    assert not policy.allowed("https://app.example.com:444")
    assert not policy.allowed("https://app.example.com.evil.test")
    assert policy.allowed("https://a.example.org")
    assert policy.allowed("https://a.b.example.org")
    assert not policy.allowed("https://example.org")  # * is at least one label
    assert not policy.allowed("https://evil.test/.example.org")
    assert not policy.allowed("https://evilexample.org")
    assert not policy.allowed("https://a.example.org.evil.test")
    assert policy.allowed("http://x.test:8080")
    assert not policy.allowed("null")
    assert OriginPolicy(["null"]).allowed("null")
    # no Origin (not a browser) passes; every Origin field must be allowed
    assert policy.allows([("host", "x")])
    assert policy.allows([("origin", "https://app.example.com")])
    assert not policy.allows([("origin", "https://evil.test")])
    assert not policy.allows([("origin", "https://app.example.com"), ("origin", "https://e.test")])
