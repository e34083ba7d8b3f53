"""The building blocks of configuration sections, shared by :mod:`skbridge.config` and
the upstream modules that declare their own tables."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr

PLACEHOLDER = re.compile(r"\.\.\.|^(xoxb|xapp|xoxp)-$|^changeme$|ABC\.\.\.", re.IGNORECASE)
"""Values copied from the example file rather than filled in."""


class Section(BaseModel):
    """A table of the config file: unknown keys are errors, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def empty_is_none(value: Any) -> Any:
    return None if value == "" else value


def check_token(value: SecretStr | None, prefix: str) -> SecretStr | None:
    """A token that is set, not a placeholder, and starts with ``prefix``."""
    if value is None:
        return None
    secret = value.get_secret_value().strip()
    if not secret or PLACEHOLDER.search(secret):
        raise ValueError("is a placeholder; set the real token")
    if prefix and not secret.startswith(prefix):
        raise ValueError(f"must start with {prefix!r}")
    return SecretStr(secret)
