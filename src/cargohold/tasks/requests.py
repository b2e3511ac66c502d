"""Run requests (`scheduleRun` bodies and saved tasks' steps): checked, then turned into a plan of steps.

A request is checked completely before its run is queued: bad fields, a task file that does not parse, a
Dockerfile missing from an uploaded context. What cannot be seen before the run (a git or tarball source) is
checked when the run starts, and a problem then ends the run with its reason in the log.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cargohold.management.arm import ArmError, invalid
from cargohold.tasks import taskfile
from cargohold.tasks.runs import DEFAULT_TIMEOUT, MAX_TIMEOUT
from cargohold.tasks.taskfile import BuildArgs, Plan, RunValues, Step, TaskFileError

REQUEST_TYPES = ("DockerBuildRequest", "FileTaskRunRequest", "EncodedTaskRunRequest", "TaskRunRequest")
OS_NAMES = ("Linux", "Windows")
ARCHITECTURES = ("amd64", "x86", "386", "arm", "arm64")
VARIANTS = ("v6", "v7", "v8")


@dataclass
class RunSpec:
    """A request in the shape the runner needs; stored sealed with its run (it may hold secrets)."""

    kind: str
    """build (DockerBuildRequest) or file (a task file: FileTaskRunRequest, EncodedTaskRunRequest)."""
    run_type: str
    platform: dict[str, str]
    timeout: int
    source_location: str | None = None
    build: dict[str, Any] = field(default_factory=dict)
    task_text: str | None = None
    task_file_path: str | None = None
    values_text: str | None = None
    values_file_path: str | None = None
    values: dict[str, str] = field(default_factory=dict)
    secret_values: list[str] = field(default_factory=list)
    custom_registries: dict[str, tuple[str, str]] = field(default_factory=dict)
    agent_pool: str | None = None
    is_archive_enabled: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "runType": self.run_type, "platform": self.platform, "timeout": self.timeout,
                "sourceLocation": self.source_location, "build": self.build, "taskText": self.task_text,
                "taskFilePath": self.task_file_path, "valuesText": self.values_text,
                "valuesFilePath": self.values_file_path, "values": self.values, "secretValues": self.secret_values,
                "customRegistries": {k: list(v) for k, v in self.custom_registries.items()},
                "agentPool": self.agent_pool, "isArchiveEnabled": self.is_archive_enabled}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> RunSpec:
        return cls(kind=body["kind"], run_type=body["runType"], platform=body["platform"], timeout=body["timeout"],
                   source_location=body.get("sourceLocation"), build=body.get("build") or {},
                   task_text=body.get("taskText"), task_file_path=body.get("taskFilePath"),
                   values_text=body.get("valuesText"), values_file_path=body.get("valuesFilePath"),
                   values=body.get("values") or {}, secret_values=body.get("secretValues") or [],
                   custom_registries={k: (v[0], v[1]) for k, v in (body.get("customRegistries") or {}).items()},
                   agent_pool=body.get("agentPool"), is_archive_enabled=bool(body.get("isArchiveEnabled")))

    @property
    def platform_flag(self) -> str | None:
        architecture = self.platform.get("architecture")
        if not architecture:
            return None
        variant = self.platform.get("variant")
        return f"{self.platform.get('os', 'Linux').lower()}/{architecture}" + (f"/{variant}" if variant else "")


def parse_run_request(body: dict[str, Any], *, auto: bool = False) -> RunSpec:
    kind = body.get("type")
    if kind not in REQUEST_TYPES or kind == "TaskRunRequest":
        raise invalid(f"type must be one of {', '.join(REQUEST_TYPES)}")
    spec = RunSpec(kind="build" if kind == "DockerBuildRequest" else "file",
                   run_type=("AutoBuild" if auto else "QuickBuild") if kind == "DockerBuildRequest" else
                   ("AutoRun" if auto else "QuickRun"),
                   platform=parse_platform(body.get("platform")), timeout=parse_timeout(body.get("timeout")),
                   source_location=_optional_str(body, "sourceLocation"),
                   agent_pool=_optional_str(body, "agentPoolName"),
                   is_archive_enabled=bool(body.get("isArchiveEnabled") or False),
                   custom_registries=parse_credentials(body.get("credentials")))
    if kind == "DockerBuildRequest":
        names = body.get("imageNames") or []
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise invalid("imageNames must be a list of image names")
        push = body.get("isPushEnabled", True)
        if not isinstance(push, bool):
            raise invalid("isPushEnabled must be true or false")
        if push and not names:
            raise invalid("imageNames is required when isPushEnabled is true")
        dockerfile = body.get("dockerFilePath")
        if not isinstance(dockerfile, str) or not dockerfile:
            raise invalid("dockerFilePath is required")
        arguments, secrets = _arguments(body.get("arguments"), "arguments")
        spec.build = {"imageNames": names, "isPushEnabled": push, "noCache": bool(body.get("noCache") or False),
                      "dockerFilePath": dockerfile, "target": _optional_str(body, "target"), "arguments": arguments}
        spec.secret_values = secrets
    elif kind == "EncodedTaskRunRequest":
        spec.task_text = _decode(body.get("encodedTaskContent"), "encodedTaskContent", required=True)
        spec.values_text = _decode(body.get("encodedValuesContent"), "encodedValuesContent", required=False)
        spec.values, spec.secret_values = _arguments(body.get("values"), "values")
    else:
        path = body.get("taskFilePath")
        if not isinstance(path, str) or not path:
            raise invalid("taskFilePath is required")
        spec.task_file_path = path
        spec.values_file_path = _optional_str(body, "valuesFilePath")
        spec.values, spec.secret_values = _arguments(body.get("values"), "values")
    return spec


def parse_platform(value: Any) -> dict[str, str]:
    if value is None:
        return {"os": "Linux", "architecture": "amd64"}
    if not isinstance(value, dict):
        raise invalid("platform must be {os, architecture, variant}")
    os_name = value.get("os") or "Linux"
    if not isinstance(os_name, str) or os_name.lower() not in (o.lower() for o in OS_NAMES):
        raise invalid("platform.os must be Linux or Windows")
    if os_name.lower() == "windows":
        raise invalid("Windows runs are not supported: builds run on Linux workers with buildah", "PlatformNotSupported")
    platform = {"os": "Linux", "architecture": str(value.get("architecture") or "amd64")}
    if platform["architecture"] not in ARCHITECTURES:
        raise invalid(f"platform.architecture must be one of {', '.join(ARCHITECTURES)}")
    if value.get("variant"):
        if value["variant"] not in VARIANTS:
            raise invalid(f"platform.variant must be one of {', '.join(VARIANTS)}")
        platform["variant"] = str(value["variant"])
    return platform


def parse_timeout(value: Any) -> int:
    """Seconds, 1 to 28800 (ACR's tools ask for at least 300; shorter runs are allowed here)."""
    if value is None:
        return DEFAULT_TIMEOUT
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_TIMEOUT:
        raise invalid(f"timeout must be a number of seconds up to {MAX_TIMEOUT}")
    return value


def parse_credentials(value: Any) -> dict[str, tuple[str, str]]:
    """`credentials.customRegistries`: login server → user name and password (Opaque values only)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid("credentials must be {sourceRegistry, customRegistries}")
    found: dict[str, tuple[str, str]] = {}
    for host, entry in (value.get("customRegistries") or {}).items():
        if not isinstance(entry, dict):
            raise invalid(f"credentials.customRegistries[{host}] must be {{userName, password}}")
        user, password = entry.get("userName") or {}, entry.get("password") or {}
        if any(isinstance(part, dict) and part.get("type") == "Vaultsecret" for part in (user, password)):
            raise invalid("Key Vault secrets are not supported; give Opaque values", "InvalidParameter")
        if not isinstance(user, dict) or not isinstance(password, dict) or not isinstance(user.get("value"), str) \
                or not isinstance(password.get("value"), str):
            raise invalid(f"credentials.customRegistries[{host}] needs userName.value and password.value")
        found[str(host).lower()] = (user["value"], password["value"])
    return found


def _arguments(value: Any, name: str) -> tuple[dict[str, str], list[str]]:
    if value is None:
        return {}, []
    if not isinstance(value, list):
        raise invalid(f"{name} must be a list of {{name, value, isSecret}}")
    found: dict[str, str] = {}
    secrets: list[str] = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not isinstance(item.get("value"), str):
            raise invalid(f"each of {name} needs a name and a value")
        found[item["name"]] = item["value"]
        if item.get("isSecret"):
            secrets.append(item["value"])
    return found, secrets


def _decode(value: Any, name: str, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise invalid(f"{name} is required (base64 of the YAML)")
        return None
    if not isinstance(value, str):
        raise invalid(f"{name} must be base64 text")
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise invalid(f"{name} is not base64 of UTF-8 text") from None


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise invalid(f"{key} must be a string")
    return value


# plans -------------------------------------------------------------------------------------------------------------

IMAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$")


def qualify(image: str, login_server: str) -> str:
    """An image name with its registry: names without one are in the run's registry, as in ACR."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"{login_server}/{image}"


def split_image(image: str) -> tuple[str, str, str | None, str | None]:
    """registry, repository, tag, digest of a qualified image name."""
    registry, _, rest = image.partition("/")
    digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
    tag = None
    if ":" in rest.rsplit("/", 1)[-1]:
        rest, tag = rest.rsplit(":", 1)
    return registry, rest, tag, digest


def build_plan(spec: RunSpec, run: RunValues, task_text: str | None = None, values_text: str | None = None) -> Plan:
    """The steps of a run. Task file text comes from the request or, for FileTaskRunRequest, the context."""
    if spec.kind == "build":
        build = spec.build
        names = [run_render(n, run, spec.values) for n in build["imageNames"]]
        steps = [Step(id="build", kind="build", line=0, timeout=spec.timeout, build=BuildArgs(
            tags=[qualify(n, run.registry) for n in names], dockerfile=build["dockerFilePath"], context=".",
            build_args=dict(build["arguments"]), target=build.get("target"), no_cache=bool(build.get("noCache")),
            platform=spec.platform_flag))]
        if build["isPushEnabled"]:
            steps.append(Step(id="push", kind="push", line=0, timeout=spec.timeout,
                              push=[qualify(n, run.registry) for n in names]))
        return Plan(steps, [s for s in spec.secret_values if s])
    text = task_text if task_text is not None else spec.task_text
    if text is None:
        raise TaskFileError("the task file is missing")
    values = dict(taskfile.parse_values(values_text)) if values_text else {}
    values.update(spec.values)
    plan = taskfile.parse_task_file(text, run, values, spec.secret_values)
    for step in plan.steps:
        if step.build is not None:
            step.build = BuildArgs([qualify(t, run.registry) for t in step.build.tags], step.build.dockerfile,
                                   step.build.context, step.build.build_args, step.build.target,
                                   step.build.no_cache, step.build.platform or spec.platform_flag)
        step.push = [qualify(p, run.registry) for p in step.push]
        if step.kind == "cmd":
            step.image = qualify(step.image, run.registry) if "/" in step.image else step.image
    return plan


def run_render(text: str, run: RunValues, values: dict[str, str]) -> str:
    try:
        return taskfile.render(text, run, values, aliases=True)
    except TaskFileError as exc:
        raise invalid(exc.reason) from None


def pushes(plan: Plan) -> list[str]:
    return [image for step in plan.steps for image in step.push]


def check_plan_against_context(plan: Plan, files: set[str] | None) -> None:
    """With the context's file list at hand (an uploaded context), a build naming a missing Dockerfile is a
    400 before the run is queued."""
    if files is None:
        return
    for step in plan.steps:
        if step.build is None:
            continue
        path = posixpath.normpath(posixpath.join(step.build.context, step.build.dockerfile))
        if path not in files:
            where = f" (step {step.id}, line {step.line})" if step.line else ""
            raise ArmError(400, "InvalidParameter", f"the Dockerfile {step.build.dockerfile!r} is not in the "
                           f"build context{where}")


def context_files(archive: Path) -> tuple[set[str], dict[str, bytes]]:
    """The files in an uploaded context, and the small text files among them (task and values files)."""
    names: set[str] = set()
    small: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                name = posixpath.normpath(member.name)
                if member.isfile():
                    names.add(name)
                    if member.size <= 1024 * 1024 and name.endswith((".yaml", ".yml", ".json")):
                        handle = tar.extractfile(member)
                        if handle is not None:
                            small[name] = handle.read()
    except (tarfile.TarError, EOFError, OSError):
        raise ArmError(400, "InvalidParameter", "the uploaded source is not a readable tar.gz archive") from None
    return names, small


def task_error(exc: TaskFileError) -> ArmError:
    where = f"line {exc.line}: " if exc.line else ""
    return ArmError(400, "InvalidTaskFile", f"{where}{exc.reason}")
