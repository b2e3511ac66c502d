"""The failures management commands expect, each printed as one line on stderr with exit code 1."""

from __future__ import annotations

from dataclasses import dataclass


class ConfigError(Exception):
    """No usable server or credentials: a missing file, an incomplete environment, a damaged profile."""


@dataclass
class ArmFailure(Exception):
    """An error answer from the server (ARM's code and message), or a call that could not be made."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
