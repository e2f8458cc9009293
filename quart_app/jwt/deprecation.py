"""The one warning every Flask-JWT-Extended 3.x name gives (the names themselves: ``v3``)."""

from __future__ import annotations

import warnings


def deprecated(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn that ``old`` is the 3.x API and ``new`` its 4.x form."""
    warnings.warn(
        f"{old} is the Flask-JWT-Extended 3.x API; use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
