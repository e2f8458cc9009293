"""``quart-app dev-cert``: a self-signed certificate and key for serving TLS locally.

For a laptop or a test run only: browsers and clients will not trust it unless told to
(``curl --cacert``, httpx ``verify=``). Production takes a certificate from a real CA.
The key is written with mode 0600 and never printed.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")


def _alt_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def make_dev_cert(names: tuple[str, ...] = DEFAULT_NAMES, days: int = 30) -> tuple[bytes, bytes]:
    """A PEM certificate for ``names`` (valid ``days``) and its PEM P-256 private key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([_alt_name(n) for n in names]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def write_dev_cert(
    cert_path: Path,
    key_path: Path,
    names: tuple[str, ...] = DEFAULT_NAMES,
    days: int = 30,
    *,
    force: bool = False,
) -> None:
    """Write a new pair; the key file is created with mode 0600 (never wider, not even
    for a moment). Existing files are kept unless ``force``."""
    if not force:
        for path in (cert_path, key_path):
            if path.exists():
                raise FileExistsError(f"{path} exists (--force replaces it)")
    cert_pem, key_pem = make_dev_cert(names, days)
    for path, data, mode in ((key_path, key_pem, 0o600), (cert_path, cert_pem, 0o644)):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)


@click.command("dev-cert")
@click.option(
    "--cert", "cert_path", type=click.Path(path_type=Path), default=None,
    help="Certificate file [INSTANCE_PATH/dev-cert.pem].",
)  # fmt: skip
@click.option(
    "--key", "key_path", type=click.Path(path_type=Path), default=None,
    help="Private key file, mode 0600 [INSTANCE_PATH/dev-key.pem].",
)  # fmt: skip
@click.option("--name", "names", multiple=True, help="Host name or IP (repeatable).")
@click.option("--days", type=click.IntRange(1, 825), default=30, show_default=True)
@click.option("--force", is_flag=True, help="Replace existing files.")
def dev_cert(
    cert_path: Path | None,
    key_path: Path | None,
    names: tuple[str, ...],
    days: int,
    force: bool,
) -> None:
    """Write a self-signed TLS certificate and key for local HTTPS and HTTP/2."""
    from ..startup.settings import load_settings

    instance = Path(load_settings()["INSTANCE_PATH"])
    cert_path = cert_path or instance / "dev-cert.pem"
    key_path = key_path or instance / "dev-key.pem"
    try:
        write_dev_cert(cert_path, key_path, names or DEFAULT_NAMES, days, force=force)
    except OSError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"wrote {cert_path} and its key {key_path} (mode 0600), valid {days} days")
    click.echo(f"serve: make run CERTFILE={cert_path} KEYFILE={key_path}")
