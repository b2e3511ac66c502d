"""Real buildah builds through cargohold: quick builds, multi-step runs, cancel and timeout, secrets, bad input."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.server import RunningServer
from tests.tasks.conftest import Arm, write_context


def test_quick_build_pulls_from_the_registry_copies_runs_and_pushes(arm: Arm, base_image: str, login: str,
                                                                     tasks_server: RunningServer, skopeo: str,
                                                                     buildah: str, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {
        "Dockerfile": f"FROM {base_image}\nCOPY hello.txt /hello.txt\nRUN echo built-by-run > /built.txt\n"
                      'CMD ["/bin/cat", "/hello.txt", "/built.txt"]\n',
        "hello.txt": "hello from the context\n",
        "ignored.txt": "never uploaded\n", ".dockerignore": "ignored.txt\n"})
    run = arm.build(context, imageNames=["hello:{{.Run.ID}}", "hello:latest"])
    properties = run["properties"]
    log = arm.log(run["name"])
    assert properties["status"] == "Succeeded", log
    assert properties["runType"] == "QuickBuild"
    tags = {image["tag"]: image for image in properties["outputImages"]}
    assert set(tags) == {run["name"], "latest"}
    assert tags["latest"]["registry"] == login and tags["latest"]["repository"] == "hello"
    assert tags["latest"]["digest"].startswith("sha256:")
    [base] = properties["baseImageDependencies"]
    assert (base["repository"], base["tag"]) == ("base", "1") and base["digest"].startswith("sha256:")
    assert "STEP 3/4: RUN echo built-by-run" in log or "RUN echo built-by-run" in log
    assert "Step ID: build" in log and "Step ID: push" in log

    client_id, secret = tasks_server.credentials
    layout = tmp_path / "pulled"
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "ca.crt").write_bytes((tasks_server.data_dir / "tls" / "ca.pem").read_bytes())
    pulled = subprocess.run([skopeo, "copy", "--src-cert-dir", str(certs), "--src-creds", f"{client_id}:{secret}",
                             f"docker://{tasks_server.host}/hello:{run['name']}", f"oci:{layout}:x"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert pulled.returncode == 0, pulled.stderr
    store = ["--root", str(tmp_path / "store"), "--runroot", str(tmp_path / "runroot"), "--storage-driver", "vfs"]
    container = subprocess.run([buildah, *store, "from", "--quiet", f"oci:{layout}:x"], capture_output=True,
                               text=True, timeout=120, check=True).stdout.strip()
    ran = subprocess.run([buildah, *store, "run", "--isolation", "chroot", container, "--", "/bin/cat",
                          "/hello.txt", "/built.txt"], capture_output=True, text=True, timeout=120, check=False)
    assert ran.stdout == "hello from the context\nbuilt-by-run\n", ran.stderr
    listing = subprocess.run([buildah, *store, "run", "--isolation", "chroot", container, "--", "/bin/ls", "/"],
                             capture_output=True, text=True, timeout=120, check=False).stdout.split()
    assert "ignored.txt" not in listing


MULTI_STEP = """version: v1.1.0
steps:
  - id: one
    build: -t {{.Run.Registry}}/multi-one:{{.Run.ID}} -f one.Dockerfile .
    when: ["-"]
  - id: two
    build: -t $Registry/multi-two:{{.Run.ID}} -f two.Dockerfile --build-arg WORD={{.Values.word}} .
    when: ["-"]
  - id: test
    cmd: {{.Run.Registry}}/multi-one:{{.Run.ID}} /bin/sh -c "cat /one.txt; echo env=$GREETING"
    env: ["GREETING=hi"]
    when: ["one", "two"]
  - id: push
    push: ["{{.Run.Registry}}/multi-one:{{.Run.ID}}", "{{.Run.Registry}}/multi-two:{{.Run.ID}}"]
"""


def _two_dockerfiles(base_image: str) -> dict[str, str]:
    return {"one.Dockerfile": f"FROM {base_image}\nRUN echo one > /one.txt\n",
            "two.Dockerfile": f"FROM {base_image}\nARG WORD\nRUN echo $WORD > /two.txt\n"}


def test_multi_step_run_builds_in_parallel_tests_and_pushes(arm: Arm, base_image: str, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", _two_dockerfiles(base_image))
    answer = arm.encoded(MULTI_STEP, context, values=[{"name": "word", "value": "bird"}])
    assert answer.status_code == 200, answer.text
    run = arm.wait(answer.json()["name"])
    log = arm.log(run["name"])
    assert run["properties"]["status"] == "Succeeded", log
    assert run["properties"]["runType"] == "QuickRun"
    assert {i["repository"] for i in run["properties"]["outputImages"]} == {"multi-one", "multi-two"}
    assert " one\n" in log and " env=hi\n" in log
    assert log.index("Step ID: test") > log.index("Step ID: one") and log.index("Step ID: push") > log.index(
        "Step ID: test")


@pytest.mark.backend_independent
def test_a_failing_cmd_step_fails_the_run_and_nothing_is_pushed(arm: Arm, base_image: str, tmp_path: Path) -> None:
    failing = MULTI_STEP.replace('/bin/sh -c "cat /one.txt; echo env=$GREETING"', '/bin/sh -c "exit 3"')
    failing = failing.replace("multi-one", "failing-one").replace("multi-two", "failing-two")
    context = write_context(tmp_path / "ctx", _two_dockerfiles(base_image))
    answer = arm.encoded(failing, context, values=[{"name": "word", "value": "x"}])
    run = arm.wait(answer.json()["name"])
    log = arm.log(run["name"])
    assert run["properties"]["status"] == "Failed", log
    assert "step test failed" in run["properties"]["runErrorMessage"]
    assert run["properties"]["outputImages"] == []
    assert "Step ID: push" not in log


@pytest.mark.backend_independent
def test_secret_values_never_reach_the_log(arm: Arm, base_image: str, tmp_path: Path) -> None:
    secret = "s3cr3t-Value-91"
    context = write_context(tmp_path / "ctx", {
        "Dockerfile": f"FROM {base_image}\nARG TOKEN\nRUN echo token is $TOKEN\n"})
    run = arm.build(context, imageNames=["secretive:1"], isPushEnabled=False,
                    arguments=[{"name": "TOKEN", "value": secret, "isSecret": True}])
    log = arm.log(run["name"])
    assert run["properties"]["status"] == "Succeeded", log
    assert secret not in log and "token is *****" in log

    yaml_text = ("steps:\n  - cmd: {{.Run.Registry}}/base:1 /bin/sh -c \"echo the value is {{.Values.pw}}\"\n")
    answer = arm.encoded(yaml_text, values=[{"name": "pw", "value": secret, "isSecret": True}])
    run = arm.wait(answer.json()["name"])
    log = arm.log(run["name"])
    assert run["properties"]["status"] == "Succeeded", log
    assert secret not in log and "the value is *****" in log


@pytest.mark.backend_independent
def test_a_broken_dockerfile_fails_with_buildahs_message(arm: Arm, base_image: str, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {base_image}\nFROBNICATE everything\n"})
    run = arm.build(context, imageNames=["broken:1"])
    log = arm.log(run["name"])
    assert run["properties"]["status"] == "Failed"
    assert "FROBNICATE" in log.upper() and "step build failed" in log


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _sleepers() -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"4242"]:
                    found.add(int(entry))
            except OSError:
                continue
    return found


@pytest.mark.backend_independent
def test_cancel_ends_the_whole_process_tree(arm: Arm, base_image: str) -> None:
    import time

    answer = arm.encoded("steps:\n  - cmd: {{.Run.Registry}}/base:1 /bin/sh -c \"sleep 4242\"\n")
    run_id = answer.json()["name"]
    deadline = time.monotonic() + 60
    while not _sleepers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _sleepers(), arm.log(run_id)
    assert arm.http.post(arm.path(f"/runs/{run_id}/cancel")).status_code == 200
    run = arm.wait(run_id, timeout=30)
    assert run["properties"]["status"] == "Canceled"
    deadline = time.monotonic() + 10
    while _sleepers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _sleepers()


@pytest.mark.backend_independent
def test_a_run_past_its_timeout_is_killed(arm: Arm, base_image: str) -> None:
    import time

    answer = arm.encoded("steps:\n  - cmd: {{.Run.Registry}}/base:1 /bin/sh -c \"sleep 4242\"\n", timeout=5)
    assert answer.status_code == 200, answer.text
    run = arm.wait(answer.json()["name"], timeout=60)
    assert run["properties"]["status"] == "Timeout"
    deadline = time.monotonic() + 10
    while _sleepers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _sleepers()


@pytest.mark.backend_independent
def test_a_step_timeout_fails_the_step(arm: Arm, base_image: str) -> None:
    answer = arm.encoded("steps:\n  - cmd: {{.Run.Registry}}/base:1 /bin/sh -c \"sleep 4242\"\n    timeout: 2\n")
    run = arm.wait(answer.json()["name"], timeout=60)
    assert run["properties"]["status"] == "Failed"
    assert "timed out after 2 s" in run["properties"]["runErrorMessage"]


@pytest.mark.backend_independent
@pytest.mark.parametrize(("text", "line", "words"), [
    ("steps:\n  - build: -t x .\n    bogus: 1\n", 3, "unknown step key 'bogus'"),
    ("steps:\n  - cmd: a\n    when: [b]\n  - id: b\n    cmd: c\n    when: [b]\n", 4, "cycle"),
    ("steps:\n  - cmd: [unclosed\n", 3, "not valid YAML"),
    ("version: v9\nsteps:\n  - cmd: x\n", 1, "version"),
    ("steps:\n  - cmd: x {{.Values.nope}}\n", 2, "unknown template value"),
])
def test_invalid_task_files_are_refused_naming_the_line(arm: Arm, text: str, line: int, words: str) -> None:
    answer = arm.encoded(text)
    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]["message"]
    assert message.startswith(f"line {line}:") and words in message, message


@pytest.mark.backend_independent
def test_a_missing_dockerfile_is_refused_before_queueing(arm: Arm, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM scratch\n"})
    answer = arm.schedule({"type": "DockerBuildRequest", "dockerFilePath": "sub/Dockerfile", "imageNames": ["x:1"],
                           "platform": {"os": "Linux"}, "sourceLocation": arm.upload(context)})
    assert answer.status_code == 400 and "sub/Dockerfile" in answer.json()["error"]["message"]


@pytest.mark.backend_independent
def test_an_oversized_context_is_refused_with_413(arm: Arm) -> None:
    import httpx
    from urllib.parse import urlsplit

    url = arm.http.post(arm.path("/listBuildSourceUploadUrl")).json()["uploadUrl"]
    parts = urlsplit(url)
    import socket
    import ssl as ssl_module

    context = ssl_module.create_default_context(cafile=str(arm.server.data_dir / "tls" / "ca.pem"))
    with socket.create_connection((parts.hostname, parts.port)) as raw, \
            context.wrap_socket(raw, server_hostname=parts.hostname) as sock:
        sock.sendall(f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                     f"Content-Length: {10**12}\r\n\r\n".encode())
        status = sock.recv(200).split(b" ")[1]
    assert status == b"413"
    assert httpx  # the limit is documented in docs/tasks.md


@pytest.mark.backend_independent
def test_a_run_that_would_push_where_its_caller_may_not_is_refused(tmp_path: Path) -> None:
    """A Contributor of one registry may not push into another registry of the server through a run. (A server
    of its own: a second registry would end the single-registry host fallback the other tests' skopeo uses.)"""
    import ssl

    import httpx

    from tests.management.conftest import MANAGEMENT_SCOPE, ca_file, login_server, make_credential, make_identity

    server = RunningServer(tmp_path / "data", extra_args=["--tls", "self-signed"], scheme="https").start(verify=False)
    try:
        owner = Arm(server, "cargohold")
        other = "elsewhere" + os.urandom(3).hex()
        created = owner.http.put(f"/subscriptions/default/resourceGroups/default/providers/"
                                 f"Microsoft.ContainerRegistry/registries/{other}", params={"api-version": "2025-11-01"},
                                 json={"location": "local", "sku": {"name": "Basic"}})
        assert created.status_code in (200, 201), created.text
        client_id, secret = make_identity(server, "builder", "Contributor", "cargohold")
        token = make_credential(server, client_id, secret).get_token(MANAGEMENT_SCOPE).token
        source = owner.upload(write_context(tmp_path / "ctx", {"Dockerfile": "FROM scratch\n"}))
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"},
                          verify=ssl.create_default_context(cafile=ca_file(server)),
                          params={"api-version": "2025-03-01-preview"}) as contributor:
            body = {"type": "DockerBuildRequest", "dockerFilePath": "Dockerfile", "platform": {"os": "Linux"},
                    "sourceLocation": source}
            refused = contributor.post(owner.path("/scheduleRun"),
                                       json={**body, "imageNames": [f"{login_server(other)}/stolen:1"]})
            assert refused.status_code == 403, refused.text
            assert "may not push" in refused.json()["error"]["message"]
            assert owner.http.get(owner.path("/runs")).json()["value"] == []
            allowed = contributor.post(owner.path("/scheduleRun"), json={**body, "imageNames": ["mine:1"]})
            assert allowed.status_code == 200, allowed.text
        owner.http.close()
    finally:
        server.stop()


def test_runs_list_with_filter_and_top(arm: Arm, base_image: str, tmp_path: Path) -> None:
    doomed = arm.encoded("steps:\n  - cmd: {{.Run.Registry}}/base:1 /bin/sh -c \"sleep 4242\"\n").json()["name"]
    assert arm.http.post(arm.path(f"/runs/{doomed}/cancel")).status_code == 200
    arm.wait(doomed)
    arm.build(write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {base_image}\n"}), isPushEnabled=False)
    listing = arm.http.get(arm.path("/runs"), params={"$filter": "status eq 'Canceled'", "$top": "50"})
    assert listing.status_code == 200, listing.text
    assert listing.json()["value"] and all(r["properties"]["status"] == "Canceled" for r in listing.json()["value"])
    quick = arm.http.get(arm.path("/runs"), params={"$filter": "runType eq 'QuickBuild' and status eq 'Succeeded'",
                                                     "$top": "1"}).json()["value"]
    assert len(quick) == 1 and quick[0]["properties"]["runType"] == "QuickBuild"
    since = arm.http.get(arm.path("/runs"), params={"$filter": "createTime ge 2000-01-01T00:00:00Z and "
                                                                "contains(['Failed', 'Timeout'], status)"})
    assert {r["properties"]["status"] for r in since.json()["value"]} <= {"Failed", "Timeout"}
    bad = arm.http.get(arm.path("/runs"), params={"$filter": "colour eq 'red'"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidParameter"
    patched = arm.http.patch(arm.path(f"/runs/{quick[0]['name']}"), json={"isArchiveEnabled": True})
    assert patched.status_code == 200 and patched.json()["properties"]["isArchiveEnabled"] is True
    links = arm.http.post(arm.path(f"/runs/{quick[0]['name']}/listLogSasUrl")).json()
    assert links["logArtifactLink"] == links["logLink"]
    import httpx

    tampered = links["logLink"][:-4] + ("AAAA" if not links["logLink"].endswith("AAAA") else "BBBB")
    assert httpx.get(tampered, verify=False).status_code == 403
    assert arm.http.get(arm.path("/runs/ca999999")).status_code == 404


def test_a_run_whose_worker_dies_ends_as_agent_lost(arm: Arm, base_image: str, tasks_server: RunningServer,
                                                   tmp_path: Path) -> None:
    """A worker of an agent pool is killed mid-run; the next worker of the pool ends the run as Error."""
    import signal
    import sys
    import time

    created = arm.http.put(arm.path("/agentPools/doomed"), json={"location": "local", "properties": {"count": 1}})
    assert created.status_code in (200, 201), created.text

    def worker() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "cargohold", "worker", "--data-dir",
                                 str(tasks_server.data_dir), "--agent-pool", "doomed"],
                                stdout=open(tmp_path / "worker.log", "ab"), stderr=subprocess.STDOUT,
                                start_new_session=True)
    first = worker()
    try:
        answer = arm.encoded("steps:\n  - cmd: {{.Run.Registry}}/base:1 /bin/sh -c \"sleep 4242\"\n",
                             agentPoolName="doomed")
        assert answer.status_code == 200, answer.text
        run_id = answer.json()["name"]
        deadline = time.monotonic() + 60
        while arm.run(run_id)["properties"]["status"] != "Running" and time.monotonic() < deadline:
            time.sleep(0.2)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        for pid in _sleepers():
            os.kill(pid, signal.SIGKILL)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    second = worker()
    try:
        run = arm.wait(run_id, timeout=90)
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=30)
    assert run["properties"]["status"] == "Error"
    assert "agent lost" in run["properties"]["runErrorMessage"]
    assert "agent lost" in arm.log(run_id)


@pytest.mark.backend_independent
def test_a_worker_without_buildah_ends_the_run_in_error_saying_so(arm: Arm, tasks_server: RunningServer,
                                                                  tmp_path: Path) -> None:
    import sys

    assert arm.http.put(arm.path("/agentPools/nobuildah"), json={"location": "local"}).status_code in (200, 201)
    worker = subprocess.Popen([sys.executable, "-m", "cargohold", "worker", "--data-dir", str(tasks_server.data_dir),
                               "--agent-pool", "nobuildah"], env={**os.environ, "PATH": str(Path(sys.executable).parent)},
                              stdout=open(tmp_path / "worker.log", "ab"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        answer = arm.encoded("steps:\n  - cmd: {{.Run.Registry}}/base:1 echo never\n", agentPoolName="nobuildah")
        run = arm.wait(answer.json()["name"], timeout=60)
    finally:
        import signal

        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    assert run["properties"]["status"] == "Error"
    assert "buildah is not installed" in run["properties"]["runErrorMessage"]
