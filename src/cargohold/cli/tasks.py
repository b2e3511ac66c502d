"""ACR Tasks from the command line, in `az acr` habits: `cargohold build` and `cargohold run` (upload the
context, schedule, follow the log, exit with the run's outcome), `cargohold task …` and `cargohold agentpool …`.
"""

from __future__ import annotations

import base64
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from cargohold.cli.arm_client import ArmClient, arm_session, failure_of
from cargohold.cli.common import OutputOption, QueryOption, emit, fail
from cargohold.cli.lookup import find_registry, with_resource_group
from cargohold.cli.options import MultiValueCommand, RegistryOption, ResourceGroup, ServerDataDir, Subscription
from cargohold.cli.options import parse_pairs

TASKS_API = "2025-03-01-preview"
FINAL = ("Succeeded", "Failed", "Canceled", "Error", "Timeout")
NO_CONTEXT = "/dev/null"

task_app = typer.Typer(help="Saved tasks: create, run and look after them.", no_args_is_help=True)
agentpool_app = typer.Typer(help="Agent pools: named groups of workers (`cargohold worker --agent-pool NAME`).",
                            no_args_is_help=True)

Context = Annotated[str, typer.Argument(help="The build context: a directory, a git or tarball URL, or /dev/null "
                                             "for none.")]
Images = Annotated[list[str] | None, typer.Option("--image", "-t", help="Image names, {{.Run.ID}} allowed.")]
BuildArgs = Annotated[list[str] | None, typer.Option("--build-arg", help="KEY=VALUE build arguments.")]
SecretArgs = Annotated[list[str] | None, typer.Option("--secret-build-arg", help="KEY=VALUE arguments that never "
                                                                                 "appear in logs.")]
SetValues = Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE template values.")]
SecretValues = Annotated[list[str] | None, typer.Option("--set-secret", help="KEY=VALUE secret template values.")]
NoLogs = Annotated[bool, typer.Option("--no-logs", help="Do not follow the log.")]
NoWait = Annotated[bool, typer.Option("--no-wait", help="Schedule and return at once.")]
Timeout = Annotated[int | None, typer.Option("--timeout", help="Seconds the run may take (default 3600).")]
Platform = Annotated[str | None, typer.Option("--platform", help="os/architecture or os/architecture/variant, e.g. linux/amd64.")]
AgentPool = Annotated[str | None, typer.Option("--agent-pool", help="Run on this agent pool's workers.")]
TaskName = Annotated[str, typer.Option("--name", "-n", help="Task name: 5-50 letters, digits, '-' or '_'.")]
RunId = Annotated[str | None, typer.Option("--run-id", help="A run id such as ca12 (default: the task's latest).")]


def _path(registry: dict[str, Any], rest: str) -> str:
    return f"{registry['id']}{rest}?api-version={TASKS_API}"


def _platform(value: str | None) -> dict[str, str]:
    if not value:
        return {"os": "Linux"}
    parts = value.split("/")
    platform = {"os": parts[0].capitalize()}
    if len(parts) > 1:
        platform["architecture"] = parts[1]
    if len(parts) > 2:
        platform["variant"] = parts[2]
    return platform


def _arguments(plain: list[str] | None, secret: list[str] | None, option: str) -> list[dict[str, Any]]:
    found = [{"name": k, "value": v, "isSecret": False} for k, v in (parse_pairs(plain, option) or {}).items()]
    found += [{"name": k, "value": v, "isSecret": True} for k, v in (parse_pairs(secret, option) or {}).items()]
    return found


def upload_context(arm: ArmClient, registry: dict[str, Any], context: str, dockerfile: str | None) -> str | None:
    """The source location for a run: an uploaded directory's relative path, a URL as given, or None."""
    if context == NO_CONTEXT:
        return None
    if context.startswith(("http://", "https://", "git@")):
        return context
    directory = Path(context)
    if not directory.is_dir():
        fail(f"the context {context} is not a directory")
    from cargohold.tasks.source import pack_context

    packed = pack_context(directory, dockerfile)
    answer = arm.post(_path(registry, "/listBuildSourceUploadUrl"))
    typer.echo(f"Uploading the context ({len(packed)} bytes)...", err=True)
    sent = arm.http.put(arm._local(answer["uploadUrl"]), content=packed)
    if sent.status_code >= 400:
        raise failure_of(sent)
    return str(answer["relativePath"])


def schedule_and_follow(arm: ArmClient, registry: dict[str, Any], body: dict[str, Any], *, logs: bool,
                        wait: bool, output: Any, query: str | None) -> None:
    run = arm.post(_path(registry, "/scheduleRun"), body)
    run_id = run["name"]
    if not wait:
        emit(with_resource_group(run), output, query=query, view=_run_rows)
        return
    typer.echo(f"Queued a run with ID: {run_id}", err=True)
    finished = follow(arm, registry, run_id, logs=logs)
    if not logs:
        emit(with_resource_group(finished), output, query=query, view=_run_rows)
    status = finished["properties"]["status"]
    if status != "Succeeded":
        fail(f"run {run_id} ended {status}: {finished['properties'].get('runErrorMessage') or ''}".rstrip(": "))


def follow(arm: ArmClient, registry: dict[str, Any], run_id: str, *, logs: bool) -> dict[str, Any]:
    """Print the run's log as it grows (as `az acr build` streams it) and return the finished run."""
    link = arm.post(_path(registry, f"/runs/{run_id}/listLogSasUrl"))["logLink"]
    offset = 0
    while True:
        if logs:
            response = arm.http.get(arm._local(link), headers={"Range": f"bytes={offset}-"})
            if response.status_code == 200 and response.content:
                sys.stdout.buffer.write(response.content)
                sys.stdout.flush()
                offset += len(response.content)
            complete = response.headers.get("x-ms-meta-Complete") == "true"
        else:
            complete = False
        run = arm.get(_path(registry, f"/runs/{run_id}"))
        if run["properties"]["status"] in FINAL and (complete or not logs):
            if logs:
                rest = arm.http.get(arm._local(link), headers={"Range": f"bytes={offset}-"})
                sys.stdout.buffer.write(rest.content)
                sys.stdout.flush()
            return dict(run)
        time.sleep(0.5)


def build(context: Context, registry: RegistryOption = None, resource_group: ResourceGroup = None,
          image: Images = None,
          file: Annotated[str, typer.Option("--file", "-f", help="Dockerfile, relative to the context.")]
          = "Dockerfile",
          build_arg: BuildArgs = None, secret_build_arg: SecretArgs = None,
          target: Annotated[str | None, typer.Option("--target", help="Build stage to stop at.")] = None,
          no_push: Annotated[bool, typer.Option("--no-push", help="Build without pushing.")] = False,
          no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not use cached layers.")] = False,
          platform: Platform = None, timeout: Timeout = None, agent_pool: AgentPool = None,
          no_logs: NoLogs = False, no_wait: NoWait = False, data_dir: ServerDataDir = None,
          subscription: Subscription = None, output: OutputOption = None, query: QueryOption = None) -> None:
    """Build an image on the server with buildah and push it (as `az acr build -r REG -t img:tag .`)."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        body: dict[str, Any] = {"type": "DockerBuildRequest", "imageNames": image or [],
                                "isPushEnabled": not no_push and bool(image), "noCache": no_cache,
                                "dockerFilePath": file, "target": target, "platform": _platform(platform),
                                "arguments": _arguments(build_arg, secret_build_arg, "--build-arg"),
                                "sourceLocation": upload_context(arm, found, context, file),
                                "timeout": timeout, "agentPoolName": agent_pool}
        schedule_and_follow(arm, found, {k: v for k, v in body.items() if v is not None}, logs=not no_logs,
                            wait=not no_wait, output=output, query=query)


def run(context: Annotated[str, typer.Argument(help="The source context: a directory, a URL, or /dev/null.")]
        = NO_CONTEXT, registry: RegistryOption = None, resource_group: ResourceGroup = None,
        file: Annotated[str | None, typer.Option("--file", "-f", help="The task file (acr-task.yaml): in the "
                                                 "context when one is given, else read here.")] = None,
        cmd: Annotated[str | None, typer.Option("--cmd", help="Run one container: 'IMAGE ARGS…'.")] = None,
        values: Annotated[Path | None, typer.Option("--values", help="A values file (YAML).")] = None,
        set_value: SetValues = None, set_secret: SecretValues = None, platform: Platform = None,
        timeout: Timeout = None, agent_pool: AgentPool = None, no_logs: NoLogs = False, no_wait: NoWait = False,
        data_dir: ServerDataDir = None, subscription: Subscription = None, output: OutputOption = None,
        query: QueryOption = None) -> None:
    """Run a multi-step task file or one command (as `az acr run -r REG -f acr-task.yaml .` or `--cmd`)."""
    if (file is None) == (cmd is None):
        fail("give exactly one of --file and --cmd")
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        source = upload_context(arm, found, context, None)
        body: dict[str, Any] = {"platform": _platform(platform), "timeout": timeout, "agentPoolName": agent_pool,
                                "values": _arguments(set_value, set_secret, "--set"), "sourceLocation": source}
        if cmd is not None:
            text = "steps:\n  - cmd: " + cmd.replace("\n", " ") + "\n"
            body.update(type="EncodedTaskRunRequest", encodedTaskContent=base64.b64encode(text.encode()).decode())
        elif source is not None and context != NO_CONTEXT and not Path(file or "").is_absolute():
            body.update(type="FileTaskRunRequest", taskFilePath=file)
        else:
            body.update(type="EncodedTaskRunRequest",
                        encodedTaskContent=base64.b64encode(Path(file or "").read_bytes()).decode())
        if values is not None:
            body["encodedValuesContent"] = base64.b64encode(values.read_bytes()).decode()
        schedule_and_follow(arm, found, {k: v for k, v in body.items() if v is not None}, logs=not no_logs,
                            wait=not no_wait, output=output, query=query)


# tasks ---------------------------------------------------------------------------------------------------------------

def _run_rows(value: Any) -> list[dict[str, Any]]:
    return [{"run_id": r.get("name"), "task": (r.get("properties") or {}).get("task"),
             "status": (r.get("properties") or {}).get("status"),
             "run_type": (r.get("properties") or {}).get("runType"),
             "created": (r.get("properties") or {}).get("createTime"),
             "error": (r.get("properties") or {}).get("runErrorMessage")}
            for r in (value if isinstance(value, list) else [value])]


def _task_rows(value: Any) -> list[dict[str, Any]]:
    return [{"name": t.get("name"), "status": (t.get("properties") or {}).get("status"),
             "step": ((t.get("properties") or {}).get("step") or {}).get("type"),
             "platform": ((t.get("properties") or {}).get("platform") or {}).get("os"),
             "timeout": (t.get("properties") or {}).get("timeout")}
            for t in (value if isinstance(value, list) else [value])]


def _step(context: str, file: str | None, cmd: str | None, images: list[str] | None, no_push: bool,
          build_args: list[dict[str, Any]], values: list[dict[str, Any]]) -> dict[str, Any]:
    """The task's step as `az acr task create` chooses it: a Dockerfile (Docker), a task file in the context
    (FileTask), or an inline task with no context (EncodedTask)."""
    if cmd is not None or (file is not None and context == NO_CONTEXT):
        text = "steps:\n  - cmd: " + cmd + "\n" if cmd is not None else Path(file or "").read_text()
        return {"type": "EncodedTask", "encodedTaskContent": base64.b64encode(text.encode()).decode(),
                "values": values}
    if file is not None and file.endswith((".yaml", ".yml")):
        return {"type": "FileTask", "taskFilePath": file, "contextPath": context, "values": values}
    return {"type": "Docker", "dockerFilePath": file or "Dockerfile", "imageNames": images or [],
            "isPushEnabled": not no_push and bool(images), "contextPath": context, "arguments": build_args}


@task_app.command("create", cls=MultiValueCommand)
def task_create(name: TaskName, context: Annotated[str, typer.Option("--context", "-c", help="Context: a git or "
                                                                     "tarball URL, or /dev/null.")] = NO_CONTEXT,
                registry: RegistryOption = None, resource_group: ResourceGroup = None,
                file: Annotated[str | None, typer.Option("--file", "-f", help="Dockerfile or task file.")] = None,
                cmd: Annotated[str | None, typer.Option("--cmd", help="One container: 'IMAGE ARGS…'.")] = None,
                image: Images = None, no_push: Annotated[bool, typer.Option("--no-push")] = False,
                build_arg: BuildArgs = None, secret_build_arg: SecretArgs = None, set_value: SetValues = None,
                set_secret: SecretValues = None, platform: Platform = None, timeout: Timeout = None,
                agent_pool: AgentPool = None, data_dir: ServerDataDir = None, subscription: Subscription = None,
                output: OutputOption = None, query: QueryOption = None) -> None:
    """Create a task (as `az acr task create -n NAME -r REG -c CONTEXT -f FILE`)."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        step = _step(context, file, cmd, image, no_push, _arguments(build_arg, secret_build_arg, "--build-arg"),
                     _arguments(set_value, set_secret, "--set"))
        properties: dict[str, Any] = {"platform": _platform(platform), "step": step, "status": "Enabled",
                                      "timeout": timeout or 3600}
        if agent_pool:
            properties["agentPoolName"] = agent_pool
        emit(with_resource_group(arm.put(_path(found, f"/tasks/{name}"), {"location": found.get("location"),
                                                                          "properties": properties})),
             output, query=query, view=_task_rows)


@task_app.command("show", cls=MultiValueCommand)
def task_show(name: TaskName, registry: RegistryOption = None, resource_group: ResourceGroup = None,
              data_dir: ServerDataDir = None, subscription: Subscription = None, output: OutputOption = None,
              query: QueryOption = None) -> None:
    """Show a task (never its credentials)."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        emit(with_resource_group(arm.get(_path(found, f"/tasks/{name}"))), output, query=query, view=_task_rows)


@task_app.command("list", cls=MultiValueCommand)
def task_list(registry: RegistryOption = None, resource_group: ResourceGroup = None, data_dir: ServerDataDir = None,
              subscription: Subscription = None, output: OutputOption = None, query: QueryOption = None) -> None:
    """List a registry's tasks."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        emit([with_resource_group(t) for t in arm.list(_path(found, "/tasks"))], output, query=query,
             view=_task_rows)


@task_app.command("update", cls=MultiValueCommand)
def task_update(name: TaskName, registry: RegistryOption = None, resource_group: ResourceGroup = None,
                status: Annotated[str | None, typer.Option("--status", help="Enabled or Disabled.")] = None,
                timeout: Timeout = None, platform: Platform = None, agent_pool: AgentPool = None,
                data_dir: ServerDataDir = None, subscription: Subscription = None, output: OutputOption = None,
                query: QueryOption = None) -> None:
    """Change a task: only the options given change."""
    properties: dict[str, Any] = {}
    if status is not None:
        properties["status"] = status.capitalize()
    if timeout is not None:
        properties["timeout"] = timeout
    if platform is not None:
        properties["platform"] = _platform(platform)
    if agent_pool is not None:
        properties["agentPoolName"] = agent_pool
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        emit(with_resource_group(arm.patch(_path(found, f"/tasks/{name}"), {"properties": properties})), output,
             query=query, view=_task_rows)


@task_app.command("delete", cls=MultiValueCommand)
def task_delete(name: TaskName, registry: RegistryOption = None, resource_group: ResourceGroup = None,
                data_dir: ServerDataDir = None, subscription: Subscription = None) -> None:
    """Delete a task."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        arm.delete(_path(found, f"/tasks/{name}"))


@task_app.command("run", cls=MultiValueCommand)
def task_run(name: TaskName, registry: RegistryOption = None, resource_group: ResourceGroup = None,
             set_value: SetValues = None, set_secret: SecretValues = None, no_logs: NoLogs = False,
             no_wait: NoWait = False, data_dir: ServerDataDir = None, subscription: Subscription = None,
             output: OutputOption = None, query: QueryOption = None) -> None:
    """Run a saved task now and follow its log."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        body: dict[str, Any] = {"type": "TaskRunRequest", "taskId": f"{found['id']}/tasks/{name}"}
        overrides = _arguments(set_value, set_secret, "--set")
        if overrides:
            body["overrideTaskStepProperties"] = {"values": overrides}
        schedule_and_follow(arm, found, body, logs=not no_logs, wait=not no_wait, output=output, query=query)


def _latest_run(arm: ArmClient, found: dict[str, Any], name: str | None) -> str:
    query = "&$top=1" + (f"&$filter=taskName eq '{name}'" if name else "")
    runs = arm.get(_path(found, "/runs") + query)["value"]
    if not runs:
        fail("no runs yet")
    return str(runs[0]["name"])


@task_app.command("logs", cls=MultiValueCommand)
def task_logs(name: Annotated[str | None, typer.Option("--name", "-n", help="Task name.")] = None,
              run_id: RunId = None, registry: RegistryOption = None, resource_group: ResourceGroup = None,
              data_dir: ServerDataDir = None, subscription: Subscription = None) -> None:
    """Print a run's log, following it while the run goes (default: the latest run, of the task if named)."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        follow(arm, found, run_id or _latest_run(arm, found, name), logs=True)


@task_app.command("list-runs", cls=MultiValueCommand)
def task_list_runs(name: Annotated[str | None, typer.Option("--name", "-n", help="Only this task's runs.")] = None,
                   status: Annotated[str | None, typer.Option("--run-status", help="Only runs in this state.")]
                   = None, top: Annotated[int, typer.Option("--top", help="At most this many.")] = 15,
                   registry: RegistryOption = None, resource_group: ResourceGroup = None,
                   data_dir: ServerDataDir = None, subscription: Subscription = None, output: OutputOption = None,
                   query: QueryOption = None) -> None:
    """List runs, newest first."""
    clauses = [f"taskName eq '{name}'"] if name else []
    if status:
        clauses.append(f"status eq '{status}'")
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        suffix = f"&$top={top}" + (f"&$filter={' and '.join(clauses)}" if clauses else "")
        emit([with_resource_group(r) for r in arm.get(_path(found, "/runs") + suffix)["value"]], output,
             query=query, view=_run_rows)


@task_app.command("cancel-run", cls=MultiValueCommand)
def task_cancel_run(run_id: Annotated[str, typer.Option("--run-id", help="The run to cancel.")],
                    registry: RegistryOption = None, resource_group: ResourceGroup = None,
                    data_dir: ServerDataDir = None, subscription: Subscription = None) -> None:
    """Cancel a queued or running run; a running one's processes are killed."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        arm.post(_path(found, f"/runs/{run_id}/cancel"))


# agent pools ---------------------------------------------------------------------------------------------------------

PoolName = Annotated[str, typer.Option("--name", "-n", help="Agent pool name: 3-20 letters, digits or '-'.")]
Count = Annotated[int | None, typer.Option("--count", help="How many workers the pool has (informational).")]


def _pool_rows(value: Any) -> list[dict[str, Any]]:
    return [{"name": p.get("name"), "count": (p.get("properties") or {}).get("count"),
             "tier": (p.get("properties") or {}).get("tier"), "os": (p.get("properties") or {}).get("os")}
            for p in (value if isinstance(value, list) else [value])]


@agentpool_app.command("create", cls=MultiValueCommand)
def pool_create(name: PoolName, count: Count = 1, registry: RegistryOption = None,
                resource_group: ResourceGroup = None, data_dir: ServerDataDir = None,
                subscription: Subscription = None, output: OutputOption = None, query: QueryOption = None) -> None:
    """Create an agent pool; start its workers with `cargohold worker --agent-pool NAME`."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        emit(with_resource_group(arm.put(_path(found, f"/agentPools/{name}"), {
            "location": found.get("location"), "properties": {"count": count}})), output, query=query,
             view=_pool_rows)


@agentpool_app.command("show", cls=MultiValueCommand)
def pool_show(name: PoolName, registry: RegistryOption = None, resource_group: ResourceGroup = None,
              queue: Annotated[bool, typer.Option("--queue-count", help="Show how many runs wait.")] = False,
              data_dir: ServerDataDir = None, subscription: Subscription = None, output: OutputOption = None,
              query: QueryOption = None) -> None:
    """Show an agent pool, or with --queue-count how many runs wait for it."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        if queue:
            emit(arm.post(_path(found, f"/agentPools/{name}/listQueueStatus")), output, query=query)
            return
        emit(with_resource_group(arm.get(_path(found, f"/agentPools/{name}"))), output, query=query,
             view=_pool_rows)


@agentpool_app.command("list", cls=MultiValueCommand)
def pool_list(registry: RegistryOption = None, resource_group: ResourceGroup = None, data_dir: ServerDataDir = None,
              subscription: Subscription = None, output: OutputOption = None, query: QueryOption = None) -> None:
    """List a registry's agent pools."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        emit([with_resource_group(p) for p in arm.list(_path(found, "/agentPools"))], output, query=query,
             view=_pool_rows)


@agentpool_app.command("update", cls=MultiValueCommand)
def pool_update(name: PoolName, count: Count = None, registry: RegistryOption = None,
                resource_group: ResourceGroup = None, data_dir: ServerDataDir = None,
                subscription: Subscription = None, output: OutputOption = None, query: QueryOption = None) -> None:
    """Change an agent pool's count."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        emit(with_resource_group(arm.patch(_path(found, f"/agentPools/{name}"), {
            "properties": {} if count is None else {"count": count}})), output, query=query, view=_pool_rows)


@agentpool_app.command("delete", cls=MultiValueCommand)
def pool_delete(name: PoolName, registry: RegistryOption = None, resource_group: ResourceGroup = None,
                data_dir: ServerDataDir = None, subscription: Subscription = None) -> None:
    """Delete an agent pool."""
    with arm_session(data_dir, subscription) as arm:
        found = find_registry(arm, registry, resource_group)
        arm.delete(_path(found, f"/agentPools/{name}"))
