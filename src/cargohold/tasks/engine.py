"""The seam between a run and the build engine: buildah, driven as a command line, never a Docker engine.

A run owns one `Workspace`, a directory under the worker's scratch root named by the run's row id (never a
client string). Everything buildah keeps for the run lives inside it: its image store (`storage/`, vfs driver
unless told otherwise), its run root, its temporary files, the `registries.conf` that routes this server's
login servers to the run's local proxy, and the auth file for other registries. `Workspace.remove` deletes
all of it; nothing a run pulled or built outlives the run on the worker.

Contract of `Buildah`:
- Every command runs in a process group of its own (`start_new_session`), so `kill` ends the whole tree a
  command started (`buildah run` children included) and nothing else on the machine.
- Output (stdout and stderr, merged) goes line by line to the `LogSink` as it arrives; the sink masks secrets
  and stamps the time. No method returns output that bypassed the sink, except `images`, which reads
  buildah's own listing and shows nothing to the user.
- Containers run with `--isolation chroot`: the worker needs root (or enough capabilities for chroot and
  mounts); builds need no daemon and no network namespace of their own.
- A failed command raises `CommandFailed` with buildah's exit status; its message is already in the log.
  `EngineMissing` means buildah is not installed on this worker: the run ends in Error saying so.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LogSink = Callable[[str], Awaitable[None]]
"""Receives one line of output (without its newline)."""


class EngineMissing(Exception):
    """buildah is not on this worker's PATH."""


class CommandFailed(Exception):
    def __init__(self, what: str, status: int) -> None:
        super().__init__(f"{what} failed with exit status {status}")
        self.status = status


@dataclass(frozen=True)
class Route:
    """A login server of this server that the run reaches through its local proxy at `port`."""

    login_server: str
    port: int


@dataclass
class Workspace:
    root: Path

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    @property
    def context(self) -> Path:
        return self.root / "context"

    @property
    def scratch(self) -> Path:
        return self.root / "tmp"

    def prepare(self, routes: Sequence[Route], auths: dict[str, tuple[str, str]]) -> None:
        """Lay out the directories and the registries and auth files (mode 0600) for buildah."""
        for path in (self.storage, self.root / "runroot", self.scratch, self.context):
            path.mkdir(parents=True, exist_ok=True)
        lines = ['unqualified-search-registries = ["docker.io"]', 'short-name-mode = "permissive"', ""]
        for route in routes:
            lines += ["[[registry]]", f'prefix = "{route.login_server}"',
                      f'location = "127.0.0.1:{route.port}"', "insecure = true", ""]
        (self.root / "registries.conf").write_text("\n".join(lines))
        entries = {host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
                   for host, (user, password) in auths.items()}
        fd = os.open(self.root / "auth.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"auths": entries}, handle)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Buildah:
    workspace: Workspace
    sink: LogSink
    storage_driver: str = "vfs"
    executable: str = "buildah"
    _groups: set[int] = field(default_factory=set)
    _killed: bool = False

    def __post_init__(self) -> None:
        found = shutil.which(self.executable)
        if found is None:
            raise EngineMissing("buildah is not installed on this worker (Debian: apt-get install buildah); "
                                "runs need it to build and run images")
        self.executable = found

    def _global(self) -> list[str]:
        return [self.executable, "--root", str(self.workspace.storage), "--runroot",
                str(self.workspace.root / "runroot"), "--storage-driver", self.storage_driver]

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": str(self.workspace.root),
                "TMPDIR": str(self.workspace.scratch), "BUILDAH_ISOLATION": "chroot",
                "CONTAINERS_REGISTRIES_CONF": str(self.workspace.root / "registries.conf"),
                "REGISTRY_AUTH_FILE": str(self.workspace.root / "auth.json"),
                "STORAGE_DRIVER": self.storage_driver, "LANG": "C.UTF-8"}

    async def _run(self, what: str, args: list[str], *, quiet: bool = False, capture: bool = False) -> str:
        """Run one buildah command, its output to the sink (or captured when `capture`)."""
        if self._killed:
            raise CommandFailed(what, -signal.SIGKILL)
        process = await asyncio.create_subprocess_exec(
            *self._global(), *args, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=self._env(), cwd=str(self.workspace.root),
            start_new_session=True)
        self._groups.add(process.pid)
        captured: list[str] = []
        try:
            assert process.stdout is not None
            while True:
                raw = await process.stdout.readline()
                if not raw:
                    break
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if capture:
                    captured.append(line)
                elif not quiet:
                    await self.sink(line)
            status = await process.wait()
        except BaseException:
            self._kill_group(process.pid)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(process.wait(), 5)
            raise
        finally:
            self._groups.discard(process.pid)
        if status != 0:
            if capture:
                for line in captured[-20:]:
                    await self.sink(line)
            raise CommandFailed(what, status)
        return "\n".join(captured)

    def kill(self) -> None:
        """End every process tree this engine started and refuse to start more."""
        self._killed = True
        for group in list(self._groups):
            self._kill_group(group)

    @staticmethod
    def _kill_group(group: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)

    async def build(self, context: Path, dockerfile: str, tags: Sequence[str], *, build_args: dict[str, str],
                    target: str | None = None, no_cache: bool = False, platform: str | None = None,
                    pull_always: bool = False) -> None:
        args = ["build", "--isolation", "chroot", "-f", dockerfile]
        for tag in tags:
            args += ["-t", tag]
        for name, value in build_args.items():
            args += ["--build-arg", f"{name}={value}"]
        if target:
            args += ["--target", target]
        if no_cache:
            args.append("--no-cache")
        if platform:
            args += ["--platform", platform]
        args.append("--pull-always" if pull_always else "--pull=false")
        await self._run("build", [*args, str(context)])

    async def push(self, image: str, routes: Sequence[Route] = ()) -> str:
        """Push a built image to its name's registry and return the manifest digest pushed. Pushes to this
        server go to the run's proxy by address (registries.conf rewrites pulls only)."""
        digest_file = self.workspace.scratch / f"digest-{os.urandom(6).hex()}"
        host, _, rest = image.partition("/")
        destination, options = image, []
        for route in routes:
            if route.login_server == host.lower():
                destination, options = f"127.0.0.1:{route.port}/{rest}", ["--tls-verify=false"]
        await self._run(f"push {image}", ["push", *options, "--digestfile", str(digest_file), image,
                                          f"docker://{destination}"])
        return digest_file.read_text().strip()

    async def run_container(self, image: str, command: Sequence[str], *, entrypoint: Sequence[str] | None = None,
                            env: dict[str, str] | None = None, workdir: str | None = None,
                            user: str | None = None, mounts: dict[str, str] | None = None) -> None:
        """Start a working container from `image` (pulling it if needed) and run a command in it."""
        container = (await self._run(f"from {image}", ["from", "--pull=false", "--quiet", image],
                                     capture=True)).strip().splitlines()[-1]
        try:
            config: list[str] = []
            if entrypoint is not None:
                config += ["--entrypoint", json.dumps(list(entrypoint))]
            if config:
                await self._run("config", ["config", *config, container], quiet=True)
            args = ["run", "--isolation", "chroot"]
            for name, value in (env or {}).items():
                args += ["--env", f"{name}={value}"]
            for host_path, container_path in (mounts or {}).items():
                args += ["--volume", f"{host_path}:{container_path}"]
            if workdir:
                args += ["--workingdir", workdir]
            if user:
                args += ["--user", user]
            await self._run(f"run {image}", [*args, container, "--", *(await self._command(container, command))])
        finally:
            with contextlib.suppress(Exception):
                if not self._killed:
                    await self._run("rm", ["rm", container], quiet=True)

    async def _command(self, container: str, command: Sequence[str]) -> list[str]:
        """The argument vector `buildah run` needs: the image's entrypoint followed by the command, as a
        container engine would combine them (`buildah run` itself ignores the entrypoint)."""
        inspected = json.loads(await self._run("inspect", ["inspect", "--type", "container", container],
                                               capture=True))
        settings = inspected.get("OCIv1", {}).get("config", {}) or {}
        entrypoint = settings.get("Entrypoint") or []
        if not command:
            command = settings.get("Cmd") or []
        return [*entrypoint, *command]

    async def images(self) -> list[tuple[str, str]]:
        """Every named image in the run's store: (name, manifest digest)."""
        listing = await self._run("images", ["images", "--json"], capture=True)
        found = []
        for image in json.loads(listing or "[]"):
            for name in image.get("names") or []:
                found.append((name, image.get("digest", "")))
        return found
