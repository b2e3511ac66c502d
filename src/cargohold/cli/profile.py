"""The profile `cargohold account login` keeps: one server and the service principal to use there, in
`$CARGOHOLD_CONFIG_DIR/profile.json` (default `~/.config/cargohold`). The file holds a client secret, so it is
created 0600 in a 0700 directory and nothing else is ever written beside the secret."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cargohold.cli.errors import ConfigError

PROFILE_FILE = "profile.json"


@dataclass(frozen=True)
class Profile:
    server: str
    tenant: str
    client_id: str
    client_secret: str
    subscription: str
    ca_file: str | None = None
    insecure_http: bool = False

    def to_json(self) -> dict[str, object]:
        return {"server": self.server, "tenant": self.tenant, "clientId": self.client_id,
                "clientSecret": self.client_secret, "subscription": self.subscription, "caFile": self.ca_file,
                "insecureHttp": self.insecure_http}

    @classmethod
    def from_json(cls, document: dict[str, object]) -> Profile:
        return cls(str(document["server"]), str(document["tenant"]), str(document["clientId"]),
                   str(document["clientSecret"]), str(document.get("subscription") or "default"),
                   str(document["caFile"]) if document.get("caFile") else None, document.get("insecureHttp") is True)


def config_dir() -> Path:
    configured = os.environ.get("CARGOHOLD_CONFIG_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cargohold"


def profile_path() -> Path:
    return config_dir() / PROFILE_FILE


def load_profile() -> Profile | None:
    path = profile_path()
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the profile {path}: {exc}; run `cargohold account login` again") from None
    try:
        return Profile.from_json(document)
    except (KeyError, TypeError, AttributeError):
        raise ConfigError(f"the profile {path} is incomplete; run `cargohold account login` again") from None


def save_profile(profile: Profile) -> Path:
    path = profile_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{PROFILE_FILE}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(profile.to_json(), handle, indent=2)
        handle.write("\n")
    os.replace(temporary, path)
    return path


def remove_profile() -> bool:
    try:
        profile_path().unlink()
    except FileNotFoundError:
        return False
    return True
