"""Verify password hashes made by Werkzeug (the Flask app's ``generate_password_hash``).

Users imported from the Flask app keep their Werkzeug hash until their first successful
login, which re-hashes the password to argon2id. Werkzeug is not a dependency of ours,
so the three formats it has written over the years are checked here with hashlib/hmac:

* ``pbkdf2:<digest>:<iterations>$<salt>$<hex>`` -- PBKDF2-HMAC (the default before 2.3);
* ``scrypt:<n>:<r>:<p>$<salt>$<hex>`` -- scrypt (the default since 2.3);
* ``<digest>$<salt>$<hex>`` -- the legacy "plain method": HMAC(salt, password) with that
  digest, or the bare digest of the password when the salt is empty (Werkzeug < 2.3;
  the Flask guide's ``generate_password_hash(password, 'sha256')``).

The salt is used as the text it is (Werkzeug encodes it to UTF-8, never decodes it).
Parameters are bounded so a hostile row cannot make one login burn minutes or gigabytes.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

#: Digests accepted in ``pbkdf2:`` and legacy hashes (md5 and "plain" are refused).
DIGESTS = frozenset({"sha1", "sha224", "sha256", "sha384", "sha512"})
MAX_PBKDF2_ITERATIONS = 10_000_000
#: scrypt's memory is about 128 * n * r * p bytes; Werkzeug's default uses 32 MiB.
MAX_SCRYPT_MEMORY = 256 * 1024 * 1024


class UnsupportedHash(ValueError):
    """Not a Werkzeug hash this module verifies (or parameters past the bounds)."""


@dataclass(frozen=True, slots=True)
class WerkzeugHash:
    kind: str  # "pbkdf2", "scrypt" or "hmac"
    digest: str  # pbkdf2/hmac digest name; "" for scrypt
    iterations: int  # pbkdf2 only
    n: int  # scrypt only
    r: int
    p: int
    salt: str
    hexdigest: str


def _int(text: str, what: str) -> int:
    if not text.isdigit():
        raise UnsupportedHash(f"{what} is not a number")
    return int(text)


def _hexdigest(text: str) -> str:
    lowered = text.lower()
    if not lowered or len(lowered) % 2 or any(c not in "0123456789abcdef" for c in lowered):
        raise UnsupportedHash("the digest is not hexadecimal")
    return lowered


def parse(stored: str) -> WerkzeugHash:
    """Parse a stored Werkzeug hash; raises :class:`UnsupportedHash`."""
    parts = stored.split("$", 2)
    if len(parts) != 3:
        raise UnsupportedHash("not of the form method$salt$hash")
    method, salt, digest_hex = parts
    name, *args = method.split(":")
    if name not in {"pbkdf2", "scrypt"} and (args or name not in DIGESTS):
        raise UnsupportedHash(f"unsupported method {method!r}")
    hexdigest = _hexdigest(digest_hex)
    if name == "pbkdf2":
        if len(args) != 2 or args[0] not in DIGESTS:
            raise UnsupportedHash(f"unsupported pbkdf2 method {method!r}")
        iterations = _int(args[1], "pbkdf2 iterations")
        if not 1 <= iterations <= MAX_PBKDF2_ITERATIONS:
            raise UnsupportedHash(f"pbkdf2 iterations {iterations} out of range")
        return WerkzeugHash("pbkdf2", args[0], iterations, 0, 0, 0, salt, hexdigest)
    if name == "scrypt":
        if args and len(args) != 3:
            raise UnsupportedHash(f"unsupported scrypt method {method!r}")
        n, r, p = (_int(a, "scrypt parameter") for a in args) if args else (2**15, 8, 1)
        if n < 2 or n & (n - 1) or r < 1 or p < 1 or 128 * n * r * p > MAX_SCRYPT_MEMORY:
            raise UnsupportedHash(f"scrypt parameters {n}:{r}:{p} out of range")
        return WerkzeugHash("scrypt", "", 0, n, r, p, salt, hexdigest)
    if len(hexdigest) != 2 * hashlib.new(name).digest_size:
        raise UnsupportedHash(f"a {name} digest of the wrong length")
    return WerkzeugHash("hmac", name, 0, 0, 0, 0, salt, hexdigest)


def is_werkzeug_hash(stored: str) -> bool:
    try:
        parse(stored)
    except UnsupportedHash:
        return False
    return True


def compute(parsed: WerkzeugHash, password: str) -> str:
    """The hex digest Werkzeug would have stored for ``password`` with these parameters."""
    secret, salt = password.encode(), parsed.salt.encode()
    if parsed.kind == "pbkdf2":
        return hashlib.pbkdf2_hmac(parsed.digest, secret, salt, parsed.iterations).hex()
    if parsed.kind == "scrypt":
        n, r, p = parsed.n, parsed.r, parsed.p
        # Werkzeug's own allowance: 128 * n * r * p is not quite enough for OpenSSL.
        return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, maxmem=132 * n * r * p).hex()
    if salt:
        return hmac.new(salt, secret, parsed.digest).hexdigest()
    return hashlib.new(parsed.digest, secret).hexdigest()


def verify(stored: str, password: str) -> bool:
    """True if ``password`` matches the Werkzeug hash ``stored`` (constant-time compare)."""
    parsed = parse(stored)
    return hmac.compare_digest(compute(parsed, password), parsed.hexdigest)
