"""A self-signed certificate for the class server, so browsers give the webcam over the classroom network.

    python -m dashboard.certificate [--out .class-tls] [--host 192.168.1.20]

Writes cert.pem and key.pem (the key readable by its owner only), valid for 30 days for localhost,
127.0.0.1 and each --host (the server's address on the classroom network). Students' browsers warn once
about a certificate they do not know; accepting it is what makes the camera available.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALID_DAYS = 30


def _alt_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def write_certificate(out: Path, hosts: list[str]) -> tuple[Path, Path]:
    """Write `out`/cert.pem and `out`/key.pem for localhost, 127.0.0.1 and `hosts`; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Transfer Learning Lab class server")])
    now = dt.datetime.now(dt.UTC)
    names = [_alt_name(h) for h in dict.fromkeys(["localhost", "127.0.0.1", *hosts])]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = out / "cert.pem", out / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key_bytes)
    return cert_path, key_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(".class-tls"), help="folder for cert.pem and key.pem")
    parser.add_argument("--host", action="append", default=[], help="the server's address students type")
    args = parser.parse_args(argv)
    cert, key = write_certificate(args.out, args.host)
    print(f"{cert}\n{key}")


if __name__ == "__main__":
    main()
