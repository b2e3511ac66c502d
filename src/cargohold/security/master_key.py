"""The server's master key: seals secrets that must be shown back or used later (signing keys, admin passwords).

Read from `CARGOHOLD_MASTER_KEY` (a Fernet key), else from `<data-dir>/keys/master.key`, created on first use
with mode 0600. Every node of a scaled-out registry must be given the same key.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet

ENV_VAR = "CARGOHOLD_MASTER_KEY"


class Sealer:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, secret: bytes) -> bytes:
        return self._fernet.encrypt(secret)

    def unseal(self, sealed: bytes) -> bytes:
        return self._fernet.decrypt(sealed)


def load_sealer(data_dir: Path) -> Sealer:
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return Sealer(from_env.encode())
    path = data_dir / "keys" / "master.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return Sealer(path.read_bytes().strip())
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())
            handle.flush()
            os.fsync(handle.fileno())
    return Sealer(path.read_bytes().strip())
