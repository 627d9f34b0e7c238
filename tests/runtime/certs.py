"""Test certificates made with the ``openssl`` command line (the ``cryptography`` package is
not installed): a CA, server and client certificates it signs (P-256 keys: fast), and
encrypted keys. Used by tests/runtime/test_tls.py and tests/integration/test_tls.py."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="the openssl command is not installed")
_TIMEOUT = 30.0


def _run(*args: str, cwd: Path) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=_TIMEOUT)


@dataclass
class Pair:
    """A certificate and its key (PEM files)."""

    cert: Path
    key: Path


class Authority:
    """A throwaway CA in ``directory`` that signs leaf certificates."""

    def __init__(self, directory: Path, name: str = "pyswoole-test-ca") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir = directory
        self.cert = directory / f"{name}.pem"
        self.key = directory / f"{name}.key"
        _run(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", self.key.name, "-out", self.cert.name, "-days", "2",
            "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=directory,
        )  # fmt: skip

    def issue(self, name: str, *hosts: str, client: bool = False) -> Pair:
        """A leaf certificate for ``hosts`` (DNS names or IPs; default localhost and
        127.0.0.1), for a server or (``client``) a client."""
        hosts = hosts or ("localhost", "127.0.0.1")
        sans = ",".join(
            f"IP:{h}" if h.replace(".", "").isdigit() or ":" in h else f"DNS:{h}" for h in hosts
        )
        usage = "clientAuth" if client else "serverAuth"
        ext = self.dir / f"{name}.ext"
        ext.write_text(
            f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n"
        )
        key, csr, cert = (self.dir / f"{name}.{s}" for s in ("key", "csr", "pem"))
        _run(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key.name, "-out", csr.name, "-subj", f"/CN={hosts[0]}",
            cwd=self.dir,
        )  # fmt: skip
        _run(
            "x509", "-req", "-in", csr.name, "-CA", self.cert.name, "-CAkey", self.key.name,
            "-CAcreateserial", "-out", cert.name, "-days", "2", "-extfile", ext.name,
            cwd=self.dir,
        )  # fmt: skip
        return Pair(cert, key)

    def client_context(self, pair: Pair | None = None) -> ssl.SSLContext:
        """A client context trusting this CA (presenting ``pair`` if given)."""
        context = ssl.create_default_context(cafile=str(self.cert))
        if pair is not None:
            context.load_cert_chain(str(pair.cert), str(pair.key))
        return context


def encrypt_key(key: Path, out: Path, passphrase: str) -> Path:
    """``key`` encrypted with ``passphrase`` (AES-256), written to ``out``."""
    _run(
        "pkey", "-in", str(key), "-out", str(out), "-aes256", "-passout", f"pass:{passphrase}",
        cwd=out.parent,
    )  # fmt: skip
    return out


def subject_cn(pem: str) -> str:
    """The CN of a PEM certificate (read with the openssl command)."""
    assert OPENSSL is not None
    out = subprocess.run(
        [OPENSSL, "x509", "-noout", "-subject", "-nameopt", "multiline"],
        input=pem.encode(),
        check=True,
        capture_output=True,
        timeout=_TIMEOUT,
    ).stdout.decode()
    return next(line.split("=", 1)[1].strip() for line in out.splitlines() if "commonName" in line)
