"""Starting, watching and reliably stopping the server processes the benchmark drives."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn: ask the kernel to SIGKILL the child if the harness itself dies abruptly."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


@dataclass
class ManagedProcess:
    """A server started in its own session, so the whole tree can be found and killed."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, max_chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-max_chars:]
        except OSError:
            return ""


def start_process(
    name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> ManagedProcess:
    log_file = log_path.open("wb")
    try:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl(); servers start before any sampler thread
        )
    finally:
        log_file.close()
    return ManagedProcess(name=name, popen=popen, log_path=log_path)


def _read_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, session id) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[3])


def process_tree(root_pid: int) -> list[int]:
    """root_pid, its descendants, and anything else still in its session (e.g. re-parented workers)."""
    parents: dict[int, int] = {}
    in_session: set[int] = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _read_stat(int(entry.name))
        if stat is None:
            continue
        parents[int(entry.name)] = stat[0]
        if stat[1] == root_pid:
            in_session.add(int(entry.name))
    tree = {root_pid} | in_session
    changed = True
    while changed:
        children = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= children
        changed = bool(children)
    return sorted(pid for pid in tree if pid in parents)


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss_bytes(root_pid: int) -> int:
    return sum(rss_bytes(pid) for pid in process_tree(root_pid))


@dataclass
class RssSampler:
    """Samples the summed VmRSS of a process tree in a background thread and keeps the peak."""

    root_pid: int
    interval_s: float = 0.2
    peak_bytes: int = 0
    peak_processes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"rss-{self.root_pid}", daemon=True)
        self._thread.start()

    def sample(self) -> None:
        pids = process_tree(self.root_pid)
        total = sum(rss_bytes(pid) for pid in pids)
        if total > self.peak_bytes:
            self.peak_bytes = total
            self.peak_processes = len(pids)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()


def _signal_pids(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def stop_process(proc: ManagedProcess, grace_s: float = 10.0) -> None:
    """SIGTERM the process group (and stray session members), then SIGKILL whatever is left."""
    if proc.popen.poll() is None or process_tree(proc.pid):
        pids = process_tree(proc.pid)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        _signal_pids([p for p in pids if p != proc.pid], signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and proc.popen.poll() is None:
            time.sleep(0.05)
    leftovers = process_tree(proc.pid)
    if leftovers or proc.popen.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _signal_pids(leftovers, signal.SIGKILL)
    proc.popen.wait(timeout=grace_s)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerStartError(RuntimeError):
    pass


def wait_until_ready(
    url: str, proc: ManagedProcess, timeout_s: float, ready_statuses: tuple[int, ...] = (200,)
) -> float:
    """Poll GET url until it answers one of `ready_statuses`; returns seconds waited. Fails fast if the process exits."""
    started = time.monotonic()
    last_error = "no answer"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() - started < timeout_s:
            if proc.popen.poll() is not None:
                raise ServerStartError(
                    f"{proc.name} exited with code {proc.popen.returncode} before becoming ready; "
                    f"log tail:\n{proc.log_tail()}"
                )
            try:
                response = client.get(url)
                if response.status_code in ready_statuses:
                    return time.monotonic() - started
                last_error = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last_error = repr(exc)
            time.sleep(0.1)
    raise ServerStartError(
        f"{proc.name} not ready at {url} after {timeout_s:.0f}s ({last_error}); log tail:\n{proc.log_tail()}"
    )


def raise_on_sigterm() -> None:
    """Turn SIGTERM/SIGHUP into SystemExit so `finally` blocks stop the servers."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)
