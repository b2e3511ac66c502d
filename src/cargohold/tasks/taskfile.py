"""`acr-task.yaml`: parse, validate and render multi-step task files, and the plan of a quick build.

Validation happens before a run is queued, so a bad file is a 400 that names the line and the reason, never a
failed run. Template values (`{{.Run.ID}}`, `{{.Values.x}}`, the `$Registry` aliases) are rendered on the
text first, as ACR does, so a value may appear anywhere in the file.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

VERSIONS = ("v1.0.0", "v1.1.0")
DEFAULT_STEP_TIMEOUT = 600
MAX_STEPS = 100
TOP_KEYS = frozenset({"version", "stepTimeout", "totalTimeout", "workingDirectory", "env", "secrets", "steps",
                      "alias", "networks", "volumes"})
STEP_KEYS = frozenset({"build", "push", "cmd", "id", "when", "env", "entryPoint", "workingDirectory", "timeout",
                       "startDelay", "retries", "retryDelay", "ignoreErrors", "repeat", "user", "keep", "detach",
                       "privileged", "network", "isolation", "disableWorkingDirectoryOverride", "pull",
                       "downloadRetries", "expose", "ports"})
IGNORED_STEP_KEYS = frozenset({"keep", "detach", "privileged", "network", "isolation", "pull", "downloadRetries",
                               "expose", "ports", "disableWorkingDirectoryOverride"})
"""Accepted for compatibility; they change nothing here (chroot isolation has no networks or ports)."""
STEP_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
TEMPLATE = re.compile(r"\{\{\s*\.(Run|Values)\.([A-Za-z0-9_]+)\s*\}\}")
ALIAS = re.compile(r"\$(Registry|RegistryName|ID|Date|OS|Architecture|SharedVolume|Values\.[A-Za-z0-9_]+)\b")


class TaskFileError(ValueError):
    """A task file that cannot run; `line` is 1-based, None when the problem is not on one line."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {reason}" if line else reason)
        self.reason = reason
        self.line = line


@dataclass(frozen=True)
class BuildArgs:
    tags: list[str]
    dockerfile: str
    context: str
    build_args: dict[str, str]
    target: str | None = None
    no_cache: bool = False
    platform: str | None = None


@dataclass
class Step:
    id: str
    kind: str
    """build, push or cmd."""
    line: int
    build: BuildArgs | None = None
    push: list[str] = field(default_factory=list)
    image: str = ""
    args: list[str] = field(default_factory=list)
    when: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    entry_point: str | None = None
    working_directory: str | None = None
    user: str | None = None
    timeout: int = DEFAULT_STEP_TIMEOUT
    start_delay: int = 0
    retries: int = 0
    retry_delay: int = 0
    ignore_errors: bool = False
    repeat: int = 0


@dataclass
class Plan:
    steps: list[Step]
    secrets: list[str] = field(default_factory=list)
    """Values that must never appear in a log."""
    total_timeout: int | None = None


@dataclass(frozen=True)
class RunValues:
    """What `{{.Run.*}}` names in a run."""

    id: str
    registry: str
    registry_name: str
    date: str
    os: str = "linux"
    architecture: str = "amd64"

    def lookup(self, name: str) -> str | None:
        return {"ID": self.id, "Registry": self.registry, "RegistryName": self.registry_name, "Date": self.date,
                "OS": self.os, "Architecture": self.architecture, "SharedVolume": "acb_home_vol"}.get(name)


def render(text: str, run: RunValues, values: Mapping[str, str], *, aliases: bool) -> str:
    """Fill in template values; an unknown `{{.Values.x}}` or `{{.Run.X}}` is an error naming its line."""
    def replace(match: re.Match[str]) -> str:
        scope, name = match.group(1), match.group(2)
        found = run.lookup(name) if scope == "Run" else values.get(name)
        if found is None:
            line = text.count("\n", 0, match.start()) + 1
            raise TaskFileError(f"unknown template value {{{{.{scope}.{name}}}}}", line)
        return found
    rendered = TEMPLATE.sub(replace, text)
    if aliases:
        def alias(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("Values."):
                return values.get(name[7:], match.group(0))
            return run.lookup(name) or match.group(0)
        rendered = ALIAS.sub(alias, rendered)
    return rendered


def parse_values(text: str) -> dict[str, str]:
    """A values file: a YAML mapping of names to scalars."""
    try:
        loaded = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, "values file") from None
    if not isinstance(loaded, dict):
        raise TaskFileError("the values file must be a mapping of names to values")
    return {str(k): "" if v is None else str(v) for k, v in loaded.items()}


def parse_task_file(text: str, run: RunValues, values: Mapping[str, str], secret_values: list[str]) -> Plan:
    """Render and validate a task file into a plan of steps."""
    if len(text) > 1024 * 1024:
        raise TaskFileError("the task file is larger than 1 MiB")
    aliases = "v1.1.0" in text
    rendered = render(text, run, values, aliases=aliases)
    try:
        root = yaml.compose(rendered, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, "task file") from None
    if not isinstance(root, yaml.MappingNode):
        raise TaskFileError("the task file must be a mapping with a steps list", _line(root) if root else 1)
    top = _mapping(root)
    for key, (key_node, _) in top.items():
        if key not in TOP_KEYS:
            raise TaskFileError(f"unknown key {key!r} (known: {', '.join(sorted(TOP_KEYS))})", _line(key_node))
    version = _scalar(top, "version", "v1.0.0")
    if version not in VERSIONS:
        raise TaskFileError(f"version must be one of {', '.join(VERSIONS)}", _line(top["version"][1]))
    step_timeout = _integer(top, "stepTimeout", DEFAULT_STEP_TIMEOUT, 1, 28800)
    total_timeout = _integer(top, "totalTimeout", 0, 0, 28800) or None
    working_directory = _scalar(top, "workingDirectory", None)
    common_env = _env(top)
    if "steps" not in top:
        raise TaskFileError("the task file has no steps", 1)
    steps_node = top["steps"][1]
    if not isinstance(steps_node, yaml.SequenceNode) or not steps_node.value:
        raise TaskFileError("steps must be a non-empty list", _line(steps_node))
    if len(steps_node.value) > MAX_STEPS:
        raise TaskFileError(f"at most {MAX_STEPS} steps", _line(steps_node))
    steps = [_step(node, index, step_timeout, working_directory, common_env)
             for index, node in enumerate(steps_node.value)]
    _check_graph(steps)
    if "secrets" in top:
        node = top["secrets"][1]
        if not isinstance(node, yaml.SequenceNode):
            raise TaskFileError("secrets must be a list of {id, keyvault}", _line(node))
        for item in node.value:
            raise TaskFileError("Key Vault secrets are not supported here; pass secret values with isSecret "
                                "instead", _line(item))
    secrets = [s for s in secret_values if s]
    return Plan(steps, secrets, total_timeout)


def _step(node: yaml.Node, index: int, step_timeout: int, working_directory: str | None,
          common_env: dict[str, str]) -> Step:
    if not isinstance(node, yaml.MappingNode):
        raise TaskFileError("each step must be a mapping with build, push or cmd", _line(node))
    fields = _mapping(node)
    for key, (key_node, _) in fields.items():
        if key not in STEP_KEYS:
            raise TaskFileError(f"unknown step key {key!r}", _line(key_node))
    kinds = [k for k in ("build", "push", "cmd") if k in fields]
    if len(kinds) != 1:
        raise TaskFileError("a step needs exactly one of build, push or cmd", _line(node))
    kind = kinds[0]
    value_node = fields[kind][1]
    step_id = _scalar(fields, "id", f"acb_step_{index}")
    if not STEP_ID.match(step_id):
        raise TaskFileError(f"step id {step_id!r} must be 1-64 letters, digits, '.', '_' or '-'",
                            _line(fields["id"][1]))
    step = Step(id=step_id, kind=kind, line=_line(node), timeout=_integer(fields, "timeout", step_timeout, 1, 28800),
                start_delay=_integer(fields, "startDelay", 0, 0, 3600),
                retries=_integer(fields, "retries", 0, 0, 100),
                retry_delay=_integer(fields, "retryDelay", 0, 0, 3600),
                repeat=_integer(fields, "repeat", 0, 0, 100),
                ignore_errors=_boolean(fields, "ignoreErrors"),
                entry_point=_scalar(fields, "entryPoint", None),
                working_directory=_scalar(fields, "workingDirectory", working_directory),
                user=_scalar(fields, "user", None), env={**common_env, **_env(fields)})
    if "when" in fields:
        when_node = fields["when"][1]
        if not isinstance(when_node, yaml.SequenceNode) or not all(
                isinstance(v, yaml.ScalarNode) for v in when_node.value):
            raise TaskFileError('when must be a list: ["-"] or step ids', _line(when_node))
        step.when = [str(v.value) for v in when_node.value]
        if "-" in step.when and len(step.when) > 1:
            raise TaskFileError('when: ["-"] cannot be combined with step ids', _line(when_node))
    if kind == "push":
        if not isinstance(value_node, yaml.SequenceNode) or not value_node.value or not all(
                isinstance(v, yaml.ScalarNode) and v.value for v in value_node.value):
            raise TaskFileError("push must be a non-empty list of image names", _line(value_node))
        step.push = [str(v.value) for v in value_node.value]
        return step
    if not isinstance(value_node, yaml.ScalarNode) or not str(value_node.value).strip():
        raise TaskFileError(f"{kind} must be a command line string", _line(value_node))
    try:
        words = shlex.split(str(value_node.value))
    except ValueError as exc:
        raise TaskFileError(f"{kind}: {exc}", _line(value_node)) from None
    if kind == "build":
        step.build = parse_build_args(words, _line(value_node))
    else:
        step.image, step.args = words[0], words[1:]
    return step


def parse_build_args(words: list[str], line: int | None = None) -> BuildArgs:
    """`docker build` arguments as ACR's build step takes them."""
    tags: list[str] = []
    build_args: dict[str, str] = {}
    dockerfile, target, platform, no_cache = "Dockerfile", None, None, False
    positional: list[str] = []
    index = 0

    def value() -> str:
        nonlocal index
        word = words[index]
        if "=" in word and word.startswith("--"):
            return word.split("=", 1)[1]
        index += 1
        if index >= len(words):
            raise TaskFileError(f"build: {word} needs a value", line)
        return words[index]
    while index < len(words):
        word = words[index]
        name = word.split("=", 1)[0]
        if name in ("-t", "--tag", "--image"):
            tags.append(value())
        elif name in ("-f", "--file"):
            dockerfile = value()
        elif name == "--build-arg":
            pair = value()
            key, sep, val = pair.partition("=")
            build_args[key] = val if sep else ""
        elif name == "--target":
            target = value()
        elif name == "--platform":
            platform = value()
        elif name == "--no-cache":
            no_cache = True
        elif name in ("--pull", "--rm", "--force-rm", "-q", "--quiet"):
            pass
        elif word.startswith("-") and word != "-":
            raise TaskFileError(f"build: unsupported option {name}", line)
        else:
            positional.append(word)
        index += 1
    if len(positional) != 1:
        raise TaskFileError("build: give exactly one context path (such as .)", line)
    return BuildArgs(tags, dockerfile, positional[0], build_args, target, no_cache, platform)


def _check_graph(steps: list[Step]) -> None:
    """Unique ids, `when` naming earlier-known steps, and no cycle."""
    seen: dict[str, Step] = {}
    for step in steps:
        if step.id in seen:
            raise TaskFileError(f"step id {step.id!r} is used twice", step.line)
        seen[step.id] = step
    for step in steps:
        for name in step.when:
            if name != "-" and name not in seen:
                raise TaskFileError(f"when names an unknown step {name!r}", step.line)
    state: dict[str, int] = {}

    def visit(step: Step, path: list[str]) -> None:
        if state.get(step.id) == 2:
            return
        if state.get(step.id) == 1:
            raise TaskFileError(f"when makes a cycle: {' -> '.join([*path, step.id])}", step.line)
        state[step.id] = 1
        for name in step.when:
            if name != "-":
                visit(seen[name], [*path, step.id])
        state[step.id] = 2
    for step in steps:
        visit(step, [])


def dependencies(steps: list[Step]) -> dict[str, list[str]]:
    """What each step waits for: its `when`, else the step before it (steps run in order by default)."""
    waits: dict[str, list[str]] = {}
    for index, step in enumerate(steps):
        if step.when == ["-"]:
            waits[step.id] = []
        elif step.when:
            waits[step.id] = list(step.when)
        else:
            waits[step.id] = [steps[index - 1].id] if index else []
    return waits


def _mapping(node: yaml.MappingNode) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    found: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            raise TaskFileError("keys must be plain names", _line(key))
        if key.value in found:
            raise TaskFileError(f"key {key.value!r} appears twice", _line(key))
        found[str(key.value)] = (key, value)
    return found


def _scalar(fields: dict[str, tuple[yaml.Node, yaml.Node]], key: str, default: Any) -> Any:
    if key not in fields:
        return default
    node = fields[key][1]
    if not isinstance(node, yaml.ScalarNode):
        raise TaskFileError(f"{key} must be a single value", _line(node))
    return str(node.value)


def _integer(fields: dict[str, tuple[yaml.Node, yaml.Node]], key: str, default: int, low: int, high: int) -> int:
    raw = _scalar(fields, key, None)
    if raw is None:
        return default
    if not re.fullmatch(r"\d+", raw) or not low <= int(raw) <= high:
        raise TaskFileError(f"{key} must be a whole number from {low} to {high}", _line(fields[key][1]))
    return int(raw)


def _boolean(fields: dict[str, tuple[yaml.Node, yaml.Node]], key: str) -> bool:
    raw = _scalar(fields, key, None)
    if raw is None:
        return False
    if raw.lower() not in ("true", "false"):
        raise TaskFileError(f"{key} must be true or false", _line(fields[key][1]))
    return raw.lower() == "true"


def _env(fields: dict[str, tuple[yaml.Node, yaml.Node]]) -> dict[str, str]:
    if "env" not in fields:
        return {}
    node = fields["env"][1]
    if not isinstance(node, yaml.SequenceNode):
        raise TaskFileError("env must be a list of NAME=value", _line(node))
    env: dict[str, str] = {}
    for item in node.value:
        if not isinstance(item, yaml.ScalarNode) or "=" not in str(item.value):
            raise TaskFileError("env entries are NAME=value", _line(item))
        name, _, value = str(item.value).partition("=")
        env[name] = value
    return env


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _yaml_error(exc: yaml.YAMLError, what: str) -> TaskFileError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    return TaskFileError(f"the {what} is not valid YAML: {problem}", mark.line + 1 if mark else None)
