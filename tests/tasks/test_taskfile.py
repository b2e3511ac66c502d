"""Task files, template values, `.dockerignore` and `$filter`: pure functions, no server."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from cargohold.management.arm import ArmError
from cargohold.tasks import requests, runs
from cargohold.tasks.dockerignore import IgnoreRules
from cargohold.tasks.source import pack_context
from cargohold.tasks.taskfile import RunValues, TaskFileError, dependencies, parse_task_file, render

pytestmark = pytest.mark.backend_independent

RUN = RunValues(id="ca7", registry="myreg.localhost", registry_name="myreg", date="20261129-101010z")


def test_template_values_and_aliases() -> None:
    text = "{{.Run.ID}} {{ .Run.Registry }} {{.Run.RegistryName}} {{.Values.x}} $ID $Registry"
    assert render(text, RUN, {"x": "y"}, aliases=True) == "ca7 myreg.localhost myreg y ca7 myreg.localhost"
    assert render("$Registry", RUN, {}, aliases=False) == "$Registry"
    with pytest.raises(TaskFileError) as unknown:
        render("a\nb {{.Values.missing}}", RUN, {}, aliases=False)
    assert unknown.value.line == 2


def test_steps_order_and_parallelism() -> None:
    plan = parse_task_file("""version: v1.1.0
env: ["A=1"]
steps:
  - id: a
    build: -t app:{{.Run.ID}} --build-arg X=1 -f sub/Dockerfile sub
  - id: b
    cmd: app:{{.Run.ID}} echo hi
    when: ["-"]
    env: ["B=2"]
    retries: 2
    ignoreErrors: true
  - push: [app:{{.Run.ID}}]
    when: [a, b]
""", RUN, {}, [])
    a, b, push = plan.steps
    assert a.build is not None and a.build.tags == ["app:ca7"] and a.build.dockerfile == "sub/Dockerfile"
    assert a.build.context == "sub" and a.build.build_args == {"X": "1"}
    assert b.image == "app:ca7" and b.args == ["echo", "hi"] and b.env == {"A": "1", "B": "2"}
    assert b.retries == 2 and b.ignore_errors
    assert push.id == "acb_step_2" and push.push == ["app:ca7"]
    assert dependencies(plan.steps) == {"a": [], "b": [], "acb_step_2": ["a", "b"]}


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("steps:\n  - id: x\n    cmd: a\n  - id: x\n    cmd: b\n", 4, "used twice"),
    ("steps:\n  - cmd: a\n    when: [nope]\n", 2, "unknown step"),
    ("steps:\n  - cmd: a\n    push: [b]\n", 2, "exactly one"),
    ("steps:\n  - build: --squash .\n", 2, "unsupported option"),
    ("steps:\n  - cmd: a\n    timeout: soon\n", 3, "whole number"),
    ("steps: []\n", 1, "non-empty"),
    ("stepz:\n  - cmd: a\n", 1, "unknown key"),
    ("secrets:\n  - id: s\n    keyvault: https://v/secrets/s\nsteps:\n  - cmd: a\n", 2, "Key Vault"),
])
def test_bad_task_files_name_their_line(text: str, line: int, reason: str) -> None:
    with pytest.raises(TaskFileError) as error:
        parse_task_file(text, RUN, {}, [])
    assert error.value.line == line and reason in error.value.reason


def test_quick_build_plan_qualifies_names_and_pushes() -> None:
    spec = requests.parse_run_request({"type": "DockerBuildRequest", "imageNames": ["web:{{.Run.ID}}",
                                       "other.example:5000/x:1"], "dockerFilePath": "Dockerfile",
                                       "platform": {"os": "Linux", "architecture": "arm64", "variant": "v8"}})
    plan = requests.build_plan(spec, RUN)
    assert plan.steps[0].build is not None
    assert plan.steps[0].build.tags == ["myreg.localhost/web:ca7", "other.example:5000/x:1"]
    assert plan.steps[0].build.platform == "linux/arm64/v8"
    assert requests.pushes(plan) == plan.steps[0].build.tags
    assert requests.split_image("myreg.localhost/a/b:c") == ("myreg.localhost", "a/b", "c", None)


@pytest.mark.parametrize("body", [
    {"type": "Nope"},
    {"type": "DockerBuildRequest", "imageNames": ["x"]},
    {"type": "DockerBuildRequest", "dockerFilePath": "D", "isPushEnabled": True},
    {"type": "EncodedTaskRunRequest", "encodedTaskContent": "%%%"},
    {"type": "EncodedTaskRunRequest", "encodedTaskContent": "c3RlcHM6W10=", "platform": {"os": "Windows"}},
    {"type": "EncodedTaskRunRequest", "encodedTaskContent": "c3RlcHM6W10=", "timeout": 999999},
    {"type": "FileTaskRunRequest"},
])
def test_bad_run_requests_are_400(body: dict[str, object]) -> None:
    with pytest.raises(ArmError) as error:
        requests.parse_run_request(body)
    assert error.value.status == 400


def test_dockerignore_rules(tmp_path: Path) -> None:
    rules = IgnoreRules.parse("# comment\n*.log\n!keep.log\nbuild/\n**/secret*\n/tmp\n")
    assert rules.ignored("a.log") and not rules.ignored("keep.log")
    assert rules.ignored("build/out/x.o") and rules.ignored("deep/down/secret.txt") and rules.ignored("tmp")
    assert not rules.ignored("src/main.py")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("print()\n")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "junk").write_text("x")
    (tmp_path / "a.log").write_text("x")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").write_text("*.log\nbuild\nDockerfile\n")
    with tarfile.open(fileobj=io.BytesIO(pack_context(tmp_path)), mode="r:gz") as archive:
        names = set(archive.getnames())
    assert names == {".dockerignore", "Dockerfile", "src", "src/main.py"}


def test_run_filter_parsing() -> None:
    assert runs.parse_filter(None) == []
    assert len(runs.parse_filter("status eq 'Succeeded' and TaskName eq 'it''s' and createTime ge "
                                 "2026-01-01T00:00:00Z and contains(['QuickRun','QuickBuild'], runType)")) == 1
    for bad in ("status like 'x'", "nonsense", "runId eq 'xyz'", "createTime ge yesterday"):
        with pytest.raises(ArmError):
            runs.parse_filter(bad)
