"""runtime/tls.py: the ``ssl_*`` settings turned into an :class:`ssl.SSLContext`.

Contexts are checked by real handshakes between memory BIOs (a client context trusting the
test CA against the server context built here): which certificate is served, which versions
pass, whether a client certificate is required.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import pyswoole
from pyswoole import (
    ConfigError,
    SWOOLE_SSL_SSLv2,
    SWOOLE_SSL_TLSv1,
    SWOOLE_SSL_TLSv1_2,
    SWOOLE_SSL_TLSv1_3,
)
from pyswoole.runtime import tls as tls_module
from pyswoole.runtime.tls import (
    DEFAULT_CIPHERS,
    TLS_KEYS,
    DirectTlsConnection,
    TlsConfig,
    TlsConnection,
    peer_certificate,
    protocol_range,
)
from pyswoole.server.settings import SETTINGS, Settings
from tests.runtime.certs import Authority, Pair, encrypt_key, needs_openssl

_ROUNDS = 10  # a TLS 1.3 handshake needs 2-3 flights; bounded


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority(tmp_path_factory.mktemp("tls-unit"))


@pytest.fixture(scope="module")
def pair(ca: Authority) -> Pair:
    return ca.issue("unit-server")


def config(**values: Any) -> TlsConfig:
    """A TlsConfig with the settings' defaults and ``values``."""
    settings = Settings()
    settings.update(values)
    return TlsConfig.from_settings(settings.get_value, alpn=True, name="test")


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, host: str = "localhost") -> Any:
    """A complete handshake in memory; returns the client's SSLObject (its peer cert...)."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=host)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(_ROUNDS):
        for name, obj in (("c", c), ("s", s)):
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            # TLS 1.3: the server judges the client's certificate after its own handshake;
            # the client learns of a refusal at its first read
            with contextlib.suppress(ssl.SSLWantReadError):
                s.read(1)
            c_in.write(s_out.read())
            with contextlib.suppress(ssl.SSLWantReadError):
                c.read(1)
            return c
    raise AssertionError("handshake did not complete")


def served_cn(server: ssl.SSLContext, ca: Authority, host: str = "localhost") -> str:
    cert = handshake(server, ca.client_context(), host).getpeercert()
    return str(dict(x[0] for x in cert["subject"])["commonName"])


# -- settings ---------------------------------------------------------------------------------


def test_protocols_are_a_contiguous_range_of_versions() -> None:
    assert protocol_range(0) is None  # OpenSSL's default
    assert protocol_range(SWOOLE_SSL_TLSv1_2 | SWOOLE_SSL_TLSv1_3) == (
        ssl.TLSVersion.TLSv1_2,
        ssl.TLSVersion.TLSv1_3,
    )
    assert protocol_range(SWOOLE_SSL_TLSv1_3) == (ssl.TLSVersion.TLSv1_3,) * 2
    with pytest.raises(ConfigError, match="hole"):
        protocol_range(SWOOLE_SSL_TLSv1 | SWOOLE_SSL_TLSv1_3)
    with pytest.raises(ConfigError, match="names no TLS version"):
        protocol_range(SWOOLE_SSL_SSLv2)


def test_the_tls_settings_are_honoured_with_swooles_defaults() -> None:
    for key in TLS_KEYS:
        assert SETTINGS[key].effect == "honoured", key
    settings = Settings()
    assert settings.get_value("ssl_ciphers") == DEFAULT_CIPHERS == SETTINGS["ssl_ciphers"].default
    assert settings.get_value("ssl_ecdh_curve") == "auto"
    assert settings.get_value("ssl_protocols") == 0
    assert settings.get_value("ssl_verify_peer") is False
    settings.update({"ssl_key_password": "secret", "ssl_cert_file": None})  # alias; PHP null
    assert settings["ssl_passphrase"] == "secret" and "ssl_key_password" not in settings
    settings.update({"ssl_passphrase": lambda: "from a callable"})
    for bad, match in (
        ({"ssl_protocols": SWOOLE_SSL_TLSv1 | SWOOLE_SSL_TLSv1_3}, "hole"),
        ({"ssl_protocols": -1}, "bitmask"),
        ({"ssl_passphrase": 42}, "str or a callable"),
        ({"ssl_sni_certs": {"a.test": "cert.pem"}}, "needs a dict with 'ssl_cert_file'"),
        ({"ssl_sni_certs": {"a.test": {"ssl_cert_file": "c", "cert": "x"}}}, "unknown keys"),
        ({"ssl_verify_peer": "yes"}, "expected bool"),
    ):
        with pytest.raises(ConfigError, match=match):
            Settings().update(bad)
    with_ignored = Settings()
    with_ignored.update({"ssl_verify_depth": 3, "ssl_allow_self_signed": True})
    assert [key for key, _ in with_ignored.ignored()] == [
        "ssl_verify_depth",
        "ssl_allow_self_signed",
    ]


# -- building contexts ------------------------------------------------------------------------


@needs_openssl
def test_a_context_serves_its_certificate_with_alpn_http11(ca: Authority, pair: Pair) -> None:
    tls = config(ssl_cert_file=str(pair.cert), ssl_key_file=str(pair.key))
    context = tls.build()
    assert context is tls.context and context.verify_mode == ssl.CERT_NONE
    client = ca.client_context()
    client.set_alpn_protocols(["h2", "http/1.1"])
    sslobj = handshake(context, client)
    assert sslobj.selected_alpn_protocol() == "http/1.1"
    assert served_cn(context, ca) == "localhost"


@needs_openssl
def test_missing_files_name_the_setting_and_the_path(pair: Pair, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(ConfigError, match=rf"'ssl_cert_file': file '{missing}' not found"):
        config(ssl_cert_file=missing, ssl_key_file=str(pair.key)).build()
    with pytest.raises(ConfigError, match=rf"'ssl_key_file': file '{missing}' not found"):
        config(ssl_cert_file=str(pair.cert), ssl_key_file=missing).build()
    with pytest.raises(ConfigError, match="needs ssl_cert_file"):
        config().build()
    with pytest.raises(ConfigError, match=rf"'ssl_client_cert_file': file '{missing}'"):
        config(
            ssl_cert_file=str(pair.cert),
            ssl_key_file=str(pair.key),
            ssl_verify_peer=True,
            ssl_client_cert_file=missing,
        ).build()
    with pytest.raises(ConfigError, match="'ssl_cert_file'/'ssl_key_file': cannot load"):
        config(ssl_cert_file=str(pair.key), ssl_key_file=str(pair.key)).build()  # not a cert


_UNREADABLE = """
import sys
from pyswoole import ConfigError
from pyswoole.runtime.tls import TlsConfig
from pyswoole.server.settings import Settings
settings = Settings()
settings.update({"ssl_cert_file": sys.argv[1], "ssl_key_file": sys.argv[2]})
try:
    TlsConfig.from_settings(settings.get_value, alpn=True, name="test").build()
except ConfigError as exc:
    print(exc)
"""


@needs_openssl
def test_an_unreadable_file_is_named(pair: Pair, tmp_path: Path) -> None:
    """Root reads any file: as root, the check runs in a child without the capabilities
    that let root read past file permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH)."""
    locked = tmp_path / "locked.pem"
    shutil.copy(pair.cert, locked)
    locked.chmod(0)
    expected = f"'ssl_cert_file': '{locked}' is not readable"
    if os.geteuid() != 0:
        with pytest.raises(ConfigError, match=re.escape(expected)):
            config(ssl_cert_file=str(locked), ssl_key_file=str(pair.key)).build()
        return
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    result = subprocess.run(
        [*drop, sys.executable, "-c", _UNREADABLE, str(locked), str(pair.key)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(pyswoole.__file__).parents[1])},
    )
    assert expected in result.stdout, result.stdout + result.stderr


@needs_openssl
def test_an_encrypted_key_needs_its_passphrase(ca: Authority, pair: Pair, tmp_path: Path) -> None:
    key = str(encrypt_key(pair.key, tmp_path / "enc.key", "s3cret"))
    cert = str(pair.cert)
    with pytest.raises(ConfigError, match="encrypted: set 'ssl_passphrase'"):
        config(ssl_cert_file=cert, ssl_key_file=key).build()  # never a terminal prompt
    with pytest.raises(ConfigError, match="cannot load"):
        config(ssl_cert_file=cert, ssl_key_file=key, ssl_passphrase="wrong").build()
    assert served_cn(config(ssl_cert_file=cert, ssl_key_file=key, ssl_key_password="s3cret")
                     .build(), ca) == "localhost"  # fmt: skip
    asked: list[bool] = []

    def passphrase() -> str:
        asked.append(True)
        return "s3cret"

    config(ssl_cert_file=cert, ssl_key_file=key, ssl_passphrase=passphrase).build()
    assert asked == [True]


@needs_openssl
def test_bad_ciphers_and_curves_are_config_errors(pair: Pair) -> None:
    files = {"ssl_cert_file": str(pair.cert), "ssl_key_file": str(pair.key)}
    with pytest.raises(ConfigError, match="'ssl_ciphers'"):
        config(**files, ssl_ciphers="NO-SUCH-CIPHER").build()
    with pytest.raises(ConfigError, match="'ssl_ecdh_curve'"):
        config(**files, ssl_ecdh_curve="no-such-curve").build()
    config(**files, ssl_ecdh_curve="prime256v1", ssl_prefer_server_ciphers=True).build()


@needs_openssl
def test_protocols_limit_the_handshake(ca: Authority, pair: Pair) -> None:
    files = {"ssl_cert_file": str(pair.cert), "ssl_key_file": str(pair.key)}
    only13 = config(**files, ssl_protocols=SWOOLE_SSL_TLSv1_3).build()
    assert handshake(only13, ca.client_context()).version() == "TLSv1.3"
    old = ca.client_context()
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        handshake(only13, old)
    only12 = config(**files, ssl_protocols=SWOOLE_SSL_TLSv1_2).build()
    assert handshake(only12, ca.client_context()).version() == "TLSv1.2"


@needs_openssl
def test_verify_peer_requires_a_client_certificate_of_the_ca(ca: Authority, pair: Pair) -> None:
    context = config(
        ssl_cert_file=str(pair.cert),
        ssl_key_file=str(pair.key),
        ssl_verify_peer=True,
        ssl_client_cert_file=str(ca.cert),
    ).build()
    assert context.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ssl.SSLError):
        handshake(context, ca.client_context())  # no certificate
    client = ca.issue("unit-client", "bob", client=True)
    handshake(context, ca.client_context(client))  # accepted


@needs_openssl
def test_sni_certs_choose_by_name_case_insensitively(ca: Authority, pair: Pair) -> None:
    other = ca.issue("unit-sni", "sni.test")
    context = config(
        ssl_cert_file=str(pair.cert),
        ssl_key_file=str(pair.key),
        ssl_sni_certs={
            "SNI.test": {"ssl_cert_file": str(other.cert), "ssl_key_file": str(other.key)}
        },
    ).build()
    assert served_cn(context, ca, "sni.test") == "sni.test"
    assert served_cn(context, ca, "localhost") == "localhost"
    missing = config(
        ssl_cert_file=str(pair.cert),
        ssl_key_file=str(pair.key),
        ssl_sni_certs={"x.test": {"ssl_cert_file": "/nonexistent/x.pem"}},
    )
    with pytest.raises(ConfigError, match=r"ssl_sni_certs\['x.test'\]\['ssl_cert_file'\]"):
        missing.build()


# -- renewed certificates ---------------------------------------------------------------------


def renewable(ca: Authority, tmp_path: Path, name: str) -> tuple[TlsConfig, Path, Path]:
    first = ca.issue(f"{name}-1", "localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copy(first.cert, cert)
    shutil.copy(first.key, key)
    return config(ssl_cert_file=str(cert), ssl_key_file=str(key)), cert, key


def renew(ca: Authority, cert: Path, key: Path, name: str) -> None:
    renewed = ca.issue(name, f"{name}.localhost", "localhost")
    shutil.copy(renewed.cert, cert)
    shutil.copy(renewed.key, key)


@needs_openssl
def test_workers_serve_the_context_built_at_start(ca: Authority, tmp_path: Path) -> None:
    """Built once, before any fork or privilege drop; files renewed later are read only by
    reload() (a worker may no longer be allowed to read the key)."""
    tls, cert, key = renewable(ca, tmp_path, "start")
    built = tls.worker_context()  # nothing built yet: built now
    assert built is tls.context and tls.worker_context() is built
    renew(ca, cert, key, "later")
    assert tls.worker_context() is built and served_cn(built, ca) == "localhost"


@needs_openssl
def test_reload_reads_renewed_files_into_the_same_context(
    ca: Authority, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tls, cert, key = renewable(ca, tmp_path, "inplace")
    assert tls.reload() is False  # nothing built yet
    context = tls.build()
    assert served_cn(context, ca) == "localhost"
    renew(ca, cert, key, "reloaded")
    assert tls.reload() is True
    assert tls.context is context and served_cn(context, ca) == "reloaded.localhost"
    key.write_text("broken")
    with caplog.at_level("ERROR", logger="pyswoole"):
        assert tls.reload() is False
    assert "keeping the previous certificate" in caplog.text
    assert served_cn(context, ca) == "reloaded.localhost"


def test_peer_certificate_of_plain_transports_is_none() -> None:
    class Plain:
        def get_extra_info(self, name: str) -> Any:
            return None

    assert peer_certificate(None) is None
    assert peer_certificate(Plain()) is None


# -- the engine (ssl_engine) ------------------------------------------------------------------


@needs_openssl
def test_ssl_engine_chooses_the_transport_of_each_listener(ca: Authority, pair: Pair) -> None:
    """``auto``: aiofastnet where importable (not with PYSWOOLE_NO_EXTENSIONS) unless the
    listener has ssl_sni_certs; ``stdlib`` always; ``aiofastnet`` with ssl_sni_certs fails
    start() (CPython's sni_callback would crash under its direct engine)."""
    files = {"ssl_cert_file": str(pair.cert), "ssl_key_file": str(pair.key)}
    sni = {"sni.test": dict(files)}
    available = tls_module.aiofastnet_module() is not None
    assert Settings().get_value("ssl_engine") == "auto"
    auto = config(**files)
    auto.build()
    assert auto.engine == ("aiofastnet" if available else "stdlib")
    assert auto.connection_class() is (DirectTlsConnection if available else TlsConnection)
    stdlib = config(ssl_engine="stdlib", **files)
    assert stdlib.engine == "stdlib" and stdlib.connection_class() is TlsConnection
    assert config(ssl_sni_certs=sni, **files).engine == "stdlib"
    with pytest.raises(ConfigError, match="must be one of 'auto', 'stdlib', 'aiofastnet'"):
        Settings().update({"ssl_engine": "openssl"})
    if available:
        with pytest.raises(ConfigError, match="'aiofastnet' cannot serve ssl_sni_certs"):
            config(ssl_engine="aiofastnet", ssl_sni_certs=sni, **files).build()
    else:
        with pytest.raises(ConfigError, match="setting 'ssl_engine': 'aiofastnet' is"):
            Settings().update({"ssl_engine": "aiofastnet"})
