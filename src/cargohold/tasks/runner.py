"""The handler of run jobs: take a queued run, execute its steps with buildah, stream its log, record the end.

A run's job is leased like any job. If the worker running it dies, the lease runs out and another worker
claims the job; finding the run already Running, it ends it as Error ("agent lost") instead of building again.
A registry runs at most its SKU's number of runs at once, and a worker at most `runs_per_worker`: a run over
either limit goes back to the queue for a second and is taken when there is room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from cargohold.auth import jwt_tokens, keys
from cargohold.auth.permissions import PULL, PUSH, Scope, intersect
from cargohold.auth.principals import Principal
from cargohold.auth.roles import grants_for
from cargohold.db.engine import write_transaction
from cargohold.db.tables import registries
from cargohold.jobs.queue import Job
from cargohold.jobs.worker import JobFailed
from cargohold.kernel.context import RegistryContext
from cargohold.kernel.tenancy import RegistryRecord
from cargohold.management.arm import ArmError
from cargohold.security.master_key import Sealer
from cargohold.tasks import logs, requests, runs, source
from cargohold.tasks.engine import Buildah, CommandFailed, EngineMissing, Route, Workspace
from cargohold.tasks.requests import RunSpec
from cargohold.tasks.service import Target, check_pushes, local_registry, run_values
from cargohold.tasks.taskfile import Plan, Step, TaskFileError, dependencies

if TYPE_CHECKING:
    from cargohold.tasks.proxy import RegistryProxy

log = logging.getLogger(__name__)

SKU_CONCURRENCY = {"Basic": 1, "Standard": 2, "Premium": 10}
"""Runs of one registry at once, by SKU (our choice: ACR does not publish per-SKU numbers)."""
FLUSH_SECONDS = 0.3
FROM_LINE = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(?P<image>[^\s$]+)", re.IGNORECASE | re.MULTILINE)
AGENT_LOST = "agent lost: the worker running this run stopped before it finished"


@dataclass(frozen=True)
class RunnerSettings:
    scratch: Path
    """Where run workspaces live (CARGOHOLD_TASKS_SCRATCH; default <data dir>/tasks-work)."""
    endpoint: str | None = None
    """The server's URL as workers reach it (CARGOHOLD_TASKS_ENDPOINT); default: the URL the run was
    scheduled at."""
    verify: bool | str = True
    storage_driver: str = "vfs"
    runs_per_worker: int = 2

    @classmethod
    def from_env(cls, data_dir: Path) -> RunnerSettings:
        ca = os.environ.get("CARGOHOLD_TASKS_CA") or (str(data_dir / "tls" / "ca.pem")
                                                      if (data_dir / "tls" / "ca.pem").is_file() else None)
        return cls(scratch=Path(os.environ.get("CARGOHOLD_TASKS_SCRATCH") or data_dir / "tasks-work"),
                   endpoint=os.environ.get("CARGOHOLD_TASKS_ENDPOINT") or None, verify=ca or True,
                   storage_driver=os.environ.get("CARGOHOLD_TASKS_STORAGE_DRIVER", "vfs"),
                   runs_per_worker=int(os.environ.get("CARGOHOLD_TASKS_RUNS_PER_WORKER", 2)))


class StepFailed(Exception):
    pass


class Canceled(Exception):
    pass


class RunRunner:
    def __init__(self, ctx: RegistryContext, sealer: Sealer, settings: RunnerSettings) -> None:
        self.ctx = ctx
        self.sealer = sealer
        self.settings = settings
        self.active = 0

    async def __call__(self, job: Job) -> None:
        pk = int(job.payload["run"])
        run = await self.ctx.run(self._load, pk)
        if run is None or run.finished:
            return
        if run.status == runs.RUNNING:
            await self.ctx.run(self._end_lost, run)
            return
        if self.active >= self.settings.runs_per_worker:
            raise JobFailed("this worker is running as many runs as it may", retry_after=timedelta(seconds=0.5))
        started = await self.ctx.run(self._start, run)
        if started is None:
            return
        if not started:
            raise JobFailed("the registry runs as many runs as its SKU allows", retry_after=timedelta(seconds=1))
        self.active += 1
        try:
            await Execution(self, run).go()
        finally:
            self.active -= 1

    def _load(self, pk: int) -> runs.Run | None:
        with self.ctx.engine.connect() as conn:
            return runs.get_run_by_pk(conn, pk)

    def _start(self, run: runs.Run) -> bool | None:
        """True if started; False if the registry is at its limit; None if the run is no longer queued."""
        with write_transaction(self.ctx.engine) as conn:
            sku = conn.execute(select(registries.c.sku).where(registries.c.id == run.registry_id)).scalar_one()
            if runs.running_count(conn, run.registry_id) >= SKU_CONCURRENCY.get(sku, 1):
                return False
            return True if runs.start(conn, run.pk) else None

    def _end_lost(self, run: runs.Run) -> None:
        Workspace(self.settings.scratch / f"run-{run.pk}").remove()
        with write_transaction(self.ctx.engine) as conn:
            writer = logs.LogWriter([], offset=logs.live_size(conn, run.pk))
            writer.line(f"Run ID: {run.run_id} ended: {AGENT_LOST}")
            logs.store_chunks(conn, run.pk, writer.drain())
            data = logs.read_live(conn, run.pk)
        digest = logs.archive(self.ctx.store, data)
        with write_transaction(self.ctx.engine) as conn:
            if runs.finish(conn, run.pk, runs.ERROR, error=AGENT_LOST, log_digest=str(digest), log_size=len(data)):
                logs.drop_live(conn, run.pk)


@dataclass
class Execution:
    runner: RunRunner
    run: runs.Run
    outputs: list[dict[str, Any]] = field(default_factory=list)
    bases: list[dict[str, Any]] = field(default_factory=list)
    engines: list[Buildah] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ctx = self.runner.ctx
        self.settings = self.runner.settings
        self.log = logs.LogWriter([])
        self.workspace = Workspace(self.settings.scratch / f"run-{self.run.pk}")
        self._tokens: dict[tuple[str, str | None, bool], str] = {}
        self._allowed_pushes: set[tuple[str, str]] = set()
        self._registries: dict[str, RegistryRecord] = {}
        self.routes: list[Route] = []

    async def go(self) -> None:
        started = time.monotonic()
        status, error = runs.SUCCEEDED, None
        flushing = asyncio.create_task(self._flush_loop())
        work = asyncio.create_task(self._work())
        try:
            finished, _ = await asyncio.wait([work, flushing], timeout=self.run.timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
            if work in finished:
                work.result()
            elif flushing in finished:
                flushing.result()
                raise Canceled()
            else:
                raise TimeoutError()
        except Canceled:
            status, error = runs.CANCELED, "the run was canceled"
        except TimeoutError:
            status, error = runs.TIMEOUT, f"the run did not finish within its timeout of {self.run.timeout} s"
        except StepFailed as exc:
            status, error = runs.FAILED, str(exc)
        except (EngineMissing, source.SourceError, TaskFileError) as exc:
            status, error = runs.ERROR if isinstance(exc, EngineMissing) else runs.FAILED, str(exc)
        except Exception as exc:
            log.exception("run %s of registry %s failed", self.run.run_id, self.run.registry_id)
            status, error = runs.ERROR, f"internal error: {type(exc).__name__}"
        finally:
            for engine in self.engines:
                engine.kill()
            for task in (work, flushing):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        elapsed = int(time.monotonic() - started)
        if status == runs.SUCCEEDED:
            self.log.line(f"Run ID: {self.run.run_id} was successful after {elapsed}s")
        else:
            self.log.line(f"Run ID: {self.run.run_id} {status.lower()} after {elapsed}s. Error: {error}")
        await self.ctx.run(self._finish, status, error)
        await asyncio.to_thread(self.workspace.remove)

    async def _flush_loop(self) -> None:
        """Store the log as it grows; return when someone asked to cancel the run."""
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            if await self.ctx.run(self._flush):
                return

    def _flush(self) -> bool:
        chunks = self.log.drain()
        if chunks:
            with write_transaction(self.ctx.engine, signal=False) as conn:
                logs.store_chunks(conn, self.run.pk, chunks)
        with self.ctx.engine.connect() as conn:
            return runs.cancel_requested(conn, self.run.pk)

    def _finish(self, status: str, error: str | None) -> None:
        with write_transaction(self.ctx.engine, signal=False) as conn:
            logs.store_chunks(conn, self.run.pk, self.log.drain())
            data = logs.read_live(conn, self.run.pk)
        digest = logs.archive(self.ctx.store, data)
        with write_transaction(self.ctx.engine) as conn:
            runs.finish(conn, self.run.pk, status, error=error, output_images=self.outputs, base_images=self.bases,
                        log_digest=str(digest), log_size=len(data))
            logs.drop_live(conn, self.run.pk)

    # the work -----------------------------------------------------------------------------------------------------

    async def _work(self) -> None:
        spec, target = await self.ctx.run(self._request)
        self.log.secrets = sorted({s for s in spec.secret_values if s}, key=len, reverse=True)
        self.log.line(f"Run ID: {self.run.run_id} ({self.run.run_type}) started on worker {os.uname().nodename}")
        self.log.header("Preparing the source")
        await asyncio.to_thread(self.workspace.root.mkdir, parents=True, exist_ok=True)
        context = await self._source(spec, target)
        task_text, values_text = spec.task_text, spec.values_text
        if spec.task_file_path:
            task_text = _read_inside(context, spec.task_file_path)
            values_text = _read_inside(context, spec.values_file_path) if spec.values_file_path else values_text
        plan = requests.build_plan(spec, run_values(target, self.run.run_id), task_text, values_text)
        self.log.secrets = sorted(set(self.log.secrets) | set(plan.secrets), key=len, reverse=True)
        await self.ctx.run(self._check_pushes, plan)
        hosts = await asyncio.to_thread(self._hosts, plan, context, target)
        await self.ctx.run(self._resolve_registries, hosts)
        self._allowed_pushes = {(h, r) for h, r, _, _ in map(requests.split_image, requests.pushes(plan))}
        from cargohold.tasks.proxy import RegistryProxy  # uvicorn, only in processes that run builds

        proxy = RegistryProxy(self.settings.endpoint or self.run.endpoint, list(self._registries), self._token,
                              self.settings.verify)
        routes = await proxy.start()
        self.routes = routes
        try:
            await asyncio.to_thread(self.workspace.prepare, routes, spec.custom_registries)
            await asyncio.wait_for(self._steps(plan, context), plan.total_timeout)
        finally:
            try:
                with contextlib.suppress(Exception):
                    await self._collect_bases(plan, proxy, context)
            finally:
                await proxy.stop()

    def _check_pushes(self, plan: Plan) -> None:
        """A task file read from a git or tarball source could not be checked when the run was scheduled."""
        principal = Principal.from_subject(self.run.principal, f"run {self.run.run_id}")
        with self.ctx.engine.connect() as conn:
            try:
                check_pushes(conn, principal, requests.pushes(plan))
            except ArmError as exc:
                raise StepFailed(exc.message) from None

    def _request(self) -> tuple[RunSpec, Target]:
        with self.ctx.engine.connect() as conn:
            spec = RunSpec.from_json(runs.request_of(self.runner.sealer, conn, self.run.pk))
            row = conn.execute(select(registries.c.name, registries.c.login_server)
                               .where(registries.c.id == self.run.registry_id)).one()
        return spec, Target(self.run.registry_id, row.name, row.login_server)

    async def _source(self, spec: RunSpec, target: Target) -> Path:
        found = None
        if spec.source_location and not source.is_remote(spec.source_location):
            def lookup() -> source.BuildSource | None:
                with self.ctx.engine.connect() as conn:
                    return source.get_source(conn, target.id, relative_path=spec.source_location)
            found = await self.ctx.run(lookup)
            if found is None:
                raise source.SourceError(f"the uploaded source {spec.source_location} is gone")
        self.log.line(f"Source: {spec.source_location or '(none)'}")
        return await source.materialize(self.ctx.store, found, spec.source_location
                                        if found is None else None, self.workspace.context, self.ctx.egress)

    def _hosts(self, plan: Plan, context: Path, target: Target) -> set[str]:
        """The registries the run names: its own, those of its images and of its Dockerfiles' FROM lines."""
        images = self._from_images(plan, context)
        for step in plan.steps:
            images += step.push
            if step.image:
                images.append(step.image)
            if step.build is not None:
                images += step.build.tags
        return {target.login_server} | {image.split("/", 1)[0].lower() for image in images if "/" in image}

    @staticmethod
    def _from_images(plan: Plan, context: Path) -> list[str]:
        """The images the builds' Dockerfiles name in FROM lines (stage names and ARG-made names left out)."""
        images: list[str] = []
        for step in plan.steps:
            if step.build is not None:
                dockerfile = _inside(context, step.build.dockerfile)
                if dockerfile is not None and dockerfile.is_file():
                    images += [m.group("image") for m in FROM_LINE.finditer(dockerfile.read_text(errors="replace"))
                               if "/" in m.group("image")]
        return images

    def _resolve_registries(self, hosts: set[str]) -> None:
        with self.ctx.engine.connect() as conn:
            for host in hosts:
                found = local_registry(conn, host)
                if found is not None:
                    self._registries[host] = found

    async def _token(self, login_server: str, repository: str | None, write: bool) -> str:
        """A token for exactly this repository and these actions, as the scheduling principal may have them."""
        push = write and repository is not None and (login_server, repository) in self._allowed_pushes
        key = (login_server, repository, push)
        if key not in self._tokens:
            self._tokens[key] = await self.ctx.run(self._mint, self._registries[login_server], repository, push)
        return self._tokens[key]

    def _mint(self, registry: RegistryRecord, repository: str | None, push: bool) -> str:
        principal = Principal.from_subject(self.run.principal, f"run {self.run.run_id}")
        wanted = [Scope("repository", repository, frozenset({PULL, PUSH} if push else {PULL}))] if repository else []
        with self.ctx.engine.connect() as conn:
            grants = grants_for(conn, principal, registry.id, registry.anonymous_pull_enabled)
            keyset = keys.load_keyset(conn, self.runner.sealer, registry.id)
        granted = intersect(wanted, grants.repositories, False)
        return jwt_tokens.issue(keyset, issuer=registry.login_server, audience=registry.login_server,
                                subject=principal.subject, token_type=jwt_tokens.ACCESS,
                                ttl=self.run.timeout + 300,
                                claims={"name": principal.name, "access": [s.to_claim() for s in granted]})

    async def _steps(self, plan: Plan, context: Path) -> None:
        waits = dependencies(plan.steps)
        tasks: dict[str, asyncio.Task[None]] = {}

        async def one(step: Step) -> None:
            for name in waits[step.id]:
                await tasks[name]
            await self._step(step, context)
        for step in plan.steps:
            tasks[step.id] = asyncio.create_task(one(step))
        try:
            done, pending = await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_EXCEPTION)
            for task in tasks.values():
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks.values():
                task.cancel()
            for task in tasks.values():
                with contextlib.suppress(BaseException):
                    await task

    async def _step(self, step: Step, context: Path) -> None:
        if step.start_delay:
            await asyncio.sleep(step.start_delay)
        for round_ in range(step.repeat + 1):
            for attempt in range(step.retries + 1):
                title = f"Step ID: {step.id} ({step.kind})"
                if attempt:
                    title += f", attempt {attempt + 1}"
                if step.repeat:
                    title += f", repeat {round_ + 1}"
                self.log.header(title)
                engine = Buildah(self.workspace, self._sink, storage_driver=self.settings.storage_driver)
                self.engines.append(engine)
                begun = time.monotonic()
                try:
                    await asyncio.wait_for(self._do(step, engine, context), step.timeout)
                except CommandFailed as exc:
                    problem = f"step {step.id} failed: {exc}"
                except TimeoutError:
                    engine.kill()
                    problem = f"step {step.id} timed out after {step.timeout} s"
                else:
                    self.log.line(f"Step ID: {step.id} marked as successful (elapsed time in seconds: "
                                  f"{time.monotonic() - begun:.3f})")
                    break
                finally:
                    engine.kill()
                self.log.line(problem)
                if attempt < step.retries:
                    await asyncio.sleep(step.retry_delay)
                    continue
                if step.ignore_errors:
                    self.log.line(f"Step ID: {step.id} failed; ignoreErrors is set, so the run goes on")
                    return
                raise StepFailed(problem)

    async def _sink(self, line: str) -> None:
        self.log.line(line)

    async def _do(self, step: Step, engine: Buildah, context: Path) -> None:
        if step.kind == "build":
            assert step.build is not None
            directory = _inside(context, step.build.context)
            dockerfile = _inside(context, step.build.dockerfile)
            if directory is None or dockerfile is None:
                raise CommandFailed("build (a path leaves the context)", 2)
            await engine.build(directory, str(dockerfile), step.build.tags, build_args=step.build.build_args,
                               target=step.build.target, no_cache=step.build.no_cache,
                               platform=step.build.platform)
        elif step.kind == "push":
            for image in step.push:
                digest = await engine.push(image, self.routes)
                registry, repository, tag, _ = requests.split_image(image)
                self.outputs.append({"registry": registry, "repository": repository, "tag": tag, "digest": digest})
                self.log.line(f"Pushed {image}: digest {digest}")
        else:
            entrypoint = shlex.split(step.entry_point) if step.entry_point else None
            await engine.run_container(step.image, step.args, entrypoint=entrypoint, env=step.env,
                                       workdir=step.working_directory, user=step.user,
                                       mounts={str(context): "/workspace"})

    async def _collect_bases(self, plan: Plan, proxy: RegistryProxy, context: Path) -> None:
        """The images the run's builds started from, with the digests they resolved to (the next issue's
        base-image triggers watch them): seen by the proxy for this server's registries, else read from
        buildah's store."""
        built = {tag for step in plan.steps if step.build is not None for tag in step.build.tags}
        if not built:
            return
        for (registry, repository, tag), digest in proxy.pulled.items():
            if f"{registry}/{repository}:{tag}" not in built:
                self.bases.append({"type": "BuildTime", "registry": registry, "repository": repository,
                                   "tag": tag, "digest": digest})
        froms = await asyncio.to_thread(self._from_images, plan, context)
        if all(image.split("/", 1)[0].lower() in self._registries for image in froms):
            return
        cmd_images = {s.image for s in plan.steps if s.kind == "cmd"}
        engine = Buildah(self.workspace, self._sink, storage_driver=self.settings.storage_driver)
        for name, digest in await engine.images():
            registry, repository, tag, _ = requests.split_image(name)
            if name in built or name.startswith("localhost/") or name in cmd_images or \
                    registry.lower() in self._registries:
                continue
            self.bases.append({"type": "BuildTime", "registry": registry, "repository": repository, "tag": tag,
                               "digest": digest})


def _inside(root: Path, relative: str) -> Path | None:
    target = (root / relative).resolve()
    return target if target.is_relative_to(root.resolve()) else None


def _read_inside(root: Path, relative: str) -> str:
    path = _inside(root, relative)
    if path is None or not path.is_file():
        raise TaskFileError(f"{relative} is not a file in the source")
    return path.read_text(errors="replace")


def make_handlers(ctx: RegistryContext, sealer: Sealer, data_dir: Path | None,
                  agent_pool: str | None) -> dict[str, Callable[[Job], Any]]:
    """The run handler under the job kind this worker takes: the default pool's, or one agent pool's."""
    if data_dir is None:
        return {}
    return {runs.job_kind(agent_pool): RunRunner(ctx, sealer, RunnerSettings.from_env(data_dir))}
