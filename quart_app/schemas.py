"""Request and response models; quart-schema builds /openapi.json from them."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, StringConstraints, field_validator

USERNAME_RE = re.compile(r"[A-Za-z0-9_.\-]{3,64}")
USERNAME_RULE = "3 to 64 characters of letters, digits, '_', '.', '-'"

Password = Annotated[str, StringConstraints(min_length=8, max_length=1024)]


def normalise_username(value: str) -> str:
    """NFKC-normalise ``value`` and check the allowed alphabet; raises ValueError."""
    normalised = unicodedata.normalize("NFKC", value)
    if not USERNAME_RE.fullmatch(normalised):
        raise ValueError(f"username must be {USERNAME_RULE}")
    return normalised


def username_key(username: str) -> str:
    """What uniqueness is decided on: case-folded."""
    return username.casefold()


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Credentials(Strict):
    username: str = Field(
        min_length=1,
        max_length=256,
        examples=["alice"],
        description=f"{USERNAME_RULE}, after NFKC normalisation; unique without regard to case",
        json_schema_extra={"pattern": f"^{USERNAME_RE.pattern}$"},
    )
    password: Password = Field(examples=["correct horse battery staple"])

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        return normalise_username(value)


EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)

EmailAddress = Annotated[
    str,
    StringConstraints(max_length=254, pattern=EMAIL_RE.pattern),
    Field(examples=["alice@example.com"], description="An email address (user@domain.tld)"),
]


class Registration(Credentials):
    #: Optional: mail goes there once the link mailed to it is followed.
    email: EmailAddress | None = None


class PasswordChange(Strict):
    old_password: str = Field(min_length=1, max_length=1024)
    new_password: Password


class UsersQuery(BaseModel):
    # Query-string values arrive as text, so these are not strict.
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(default=50, ge=1, le=500)
    after_id: int = Field(default=0, ge=0, le=2**63 - 1)  # a 64-bit database id


class UserOut(BaseModel):
    id: int
    username: str


class UserList(RootModel[list[UserOut]]):
    """Users ordered by id."""


class MeOut(UserOut):
    created_at: datetime


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int


class Message(BaseModel):
    msg: str


class LoggedInAs(BaseModel):
    logged_in_as: str


class Health(BaseModel):
    status: str


class JWKS(BaseModel):
    """The public keys that verify tokens (RFC 7517 JWK Set)."""

    keys: list[dict[str, Any]]
