"""Every operation of Microsoft's `azure-mgmt-containerregistrytasks` 1.0.0b1 against cargohold, unchanged."""

from __future__ import annotations

import base64
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.containerregistrytasks import ContainerRegistryTasksMgmtClient
from azure.mgmt.containerregistrytasks import models

from tests.management.conftest import RESOURCE_GROUP, SUBSCRIPTION, ca_file, make_credential
from tests.support.server import RunningServer
from tests.tasks.conftest import write_context

RG = RESOURCE_GROUP
YAML = "steps:\n  - cmd: {{.Run.Registry}}/base:1 /bin/sh -c \"echo from-the-sdk {{.Values.who}}\"\n"


@pytest.fixture(scope="module")
def sdk(tasks_server: RunningServer, base_image: str) -> Iterator[ContainerRegistryTasksMgmtClient]:
    client_id, secret = tasks_server.credentials
    with ContainerRegistryTasksMgmtClient(make_credential(tasks_server, client_id, secret), SUBSCRIPTION,
                                          base_url=tasks_server.url, connection_verify=ca_file(tasks_server),
                                          polling_interval=0.05, retry_total=0) as client:
        yield client


def _wait(sdk: ContainerRegistryTasksMgmtClient, registry: str, run_id: str) -> models.Run:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run = sdk.runs.get(RG, registry, run_id)
        if run.properties.status not in ("Queued", "Started", "Running"):
            return run
        time.sleep(0.2)
    raise AssertionError(f"{run_id} did not finish")


def _log(sdk: ContainerRegistryTasksMgmtClient, server: RunningServer, registry: str, run_id: str) -> str:
    link = sdk.runs.get_log_sas_url(RG, registry, run_id).log_link
    return httpx.get(link, verify=ssl.create_default_context(cafile=ca_file(server))).text


def test_quick_build_through_the_sdk(sdk: ContainerRegistryTasksMgmtClient, tasks_server: RunningServer,
                                     registry_name: str, base_image: str, tmp_path: Path) -> None:
    upload = sdk.registries.get_build_source_upload_url(RG, registry_name)
    context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM {base_image}\nRUN echo sdk > /sdk.txt\n"})
    from cargohold.tasks.source import pack_context

    put = httpx.put(upload.upload_url, content=pack_context(context), headers={"x-ms-blob-type": "BlockBlob"},
                    verify=ssl.create_default_context(cafile=ca_file(tasks_server)))
    assert put.status_code == 201
    run = sdk.registries.schedule_run(RG, registry_name, models.DockerBuildRequest(
        image_names=["sdk-built:{{.Run.ID}}"], is_push_enabled=True, docker_file_path="Dockerfile",
        source_location=upload.relative_path, platform=models.PlatformProperties(os="Linux", architecture="amd64"),
        arguments=[models.Argument(name="UNUSED", value="x", is_secret=False)]))
    assert run.properties.status == "Queued" and run.properties.run_id.startswith("ca")
    done = _wait(sdk, registry_name, run.properties.run_id)
    assert done.properties.status == "Succeeded", _log(sdk, tasks_server, registry_name, run.properties.run_id)
    [image] = done.properties.output_images
    assert image.repository == "sdk-built" and image.tag == run.properties.run_id and image.digest

    updated = sdk.runs.update(RG, registry_name, run.properties.run_id,
                              models.RunUpdateParameters(is_archive_enabled=True))
    assert updated.properties.is_archive_enabled is True
    links = sdk.runs.get_log_sas_url(RG, registry_name, run.properties.run_id)
    assert links.log_artifact_link == links.log_link
    listed = list(sdk.runs.list(RG, registry_name, filter=f"runId eq '{run.properties.run_id}'", top=5))
    assert [r.properties.run_id for r in listed] == [run.properties.run_id]


def test_encoded_run_and_cancel(sdk: ContainerRegistryTasksMgmtClient, tasks_server: RunningServer,
                                registry_name: str) -> None:
    run = sdk.registries.schedule_run(RG, registry_name, models.EncodedTaskRunRequest(
        encoded_task_content=base64.b64encode(YAML.encode()).decode(),
        values_property=[models.SetValue(name="who", value="me")], platform=models.PlatformProperties(os="Linux")))
    done = _wait(sdk, registry_name, run.properties.run_id)
    assert done.properties.status == "Succeeded"
    assert "from-the-sdk me" in _log(sdk, tasks_server, registry_name, run.properties.run_id)
    sleeper = sdk.registries.schedule_run(RG, registry_name, models.EncodedTaskRunRequest(
        encoded_task_content=base64.b64encode(b"steps:\n  - cmd: {{.Run.Registry}}/base:1 sleep 60\n").decode(),
        platform=models.PlatformProperties(os="Linux")))
    sdk.runs.cancel(RG, registry_name, sleeper.properties.run_id)
    assert _wait(sdk, registry_name, sleeper.properties.run_id).properties.status == "Canceled"


def test_tasks_and_task_runs(sdk: ContainerRegistryTasksMgmtClient, tasks_server: RunningServer,
                             registry_name: str) -> None:
    step = models.EncodedTaskStep(encoded_task_content=base64.b64encode(YAML.encode()).decode(),
                                  values_property=[models.SetValue(name="who", value="task"),
                                          models.SetValue(name="hidden", value="pa55", is_secret=True)])
    created = sdk.tasks.create(RG, registry_name, "hello-task", models.Task(
        location="local", properties=models.TaskProperties(
            platform=models.PlatformProperties(os="Linux"), step=step, timeout=600,
            credentials=models.Credentials(custom_registries={"other.example": models.CustomRegistryCredentials(
                user_name=models.SecretObject(value="me", type="Opaque"),
                password=models.SecretObject(value="hunter2", type="Opaque"))}))))
    assert created.name == "hello-task" and created.properties.status == "Enabled"
    assert created.properties.timeout == 600
    fetched = sdk.tasks.get(RG, registry_name, "hello-task")
    details = sdk.tasks.get_details(RG, registry_name, "hello-task")
    for shown in (fetched, details):
        assert "hunter2" not in str(shown.as_dict()) and "pa55" not in str(shown.as_dict())
        assert "other.example" in shown.properties.credentials.custom_registries
    assert [t.name for t in sdk.tasks.list(RG, registry_name)] == ["hello-task"]

    run = sdk.registries.schedule_run(RG, registry_name, models.TaskRunRequest(task_id=created.id))
    done = _wait(sdk, registry_name, run.properties.run_id)
    assert done.properties.status == "Succeeded" and done.properties.task == "hello-task"
    assert "from-the-sdk task" in _log(sdk, tasks_server, registry_name, run.properties.run_id)

    disabled = sdk.tasks.update(RG, registry_name, "hello-task", models.TaskUpdateParameters(
        properties=models.TaskPropertiesUpdateParameters(status="Disabled")))
    assert disabled.properties.status == "Disabled"
    with pytest.raises(HttpResponseError) as refused:
        sdk.registries.schedule_run(RG, registry_name, models.TaskRunRequest(task_id=created.id))
    assert refused.value.status_code == 400

    task_run = sdk.task_runs.begin_create(RG, registry_name, "hello-taskrun", models.TaskRun(
        properties=models.TaskRunProperties(run_request=models.EncodedTaskRunRequest(
            encoded_task_content=base64.b64encode(YAML.encode()).decode(),
            values_property=[models.SetValue(name="who", value="taskrun")], platform=models.PlatformProperties(os="Linux"))),
        location="local")).result()
    first = task_run.properties.run_result.properties.run_id
    assert _wait(sdk, registry_name, first).properties.status == "Succeeded"
    assert sdk.task_runs.get(RG, registry_name, "hello-taskrun").properties.run_result.properties.run_id == first
    assert sdk.task_runs.get_details(RG, registry_name, "hello-taskrun").name == "hello-taskrun"
    assert [r.name for r in sdk.task_runs.list(RG, registry_name)] == ["hello-taskrun"]
    again = sdk.task_runs.begin_update(RG, registry_name, "hello-taskrun", models.TaskRunUpdateParameters(
        properties=models.TaskRunPropertiesUpdateParameters(force_update_tag="again"))).result()
    assert again.properties.run_result.properties.run_id != first
    _wait(sdk, registry_name, again.properties.run_result.properties.run_id)
    sdk.task_runs.delete(RG, registry_name, "hello-taskrun")
    sdk.tasks.delete(RG, registry_name, "hello-task")
    with pytest.raises(ResourceNotFoundError):
        sdk.tasks.get(RG, registry_name, "hello-task")


def test_agent_pools(sdk: ContainerRegistryTasksMgmtClient, registry_name: str) -> None:
    pool = sdk.agent_pools.begin_create(RG, registry_name, "sdkpool", models.AgentPool(
        location="local", properties=models.AgentPoolProperties(count=2, tier="S1", os="Linux"))).result()
    assert pool.properties.count == 2 and pool.properties.provisioning_state == "Succeeded"
    assert sdk.agent_pools.get(RG, registry_name, "sdkpool").properties.tier == "S1"
    assert "sdkpool" in [p.name for p in sdk.agent_pools.list(RG, registry_name)]
    updated = sdk.agent_pools.begin_update(RG, registry_name, "sdkpool", models.AgentPoolUpdateParameters(
        properties=models.AgentPoolPropertiesUpdateParameters(count=3))).result()
    assert updated.properties.count == 3
    sdk.registries.schedule_run(RG, registry_name, models.EncodedTaskRunRequest(
        encoded_task_content=base64.b64encode(YAML.encode()).decode(), agent_pool_name="sdkpool",
        values_property=[models.SetValue(name="who", value="pool")], platform=models.PlatformProperties(os="Linux")))
    assert sdk.agent_pools.get_queue_status(RG, registry_name, "sdkpool").count == 1
    sdk.agent_pools.begin_delete(RG, registry_name, "sdkpool").result()
    with pytest.raises(ResourceNotFoundError):
        sdk.agent_pools.get(RG, registry_name, "sdkpool")
    with pytest.raises(HttpResponseError) as unknown:
        sdk.registries.schedule_run(RG, registry_name, models.EncodedTaskRunRequest(
            encoded_task_content=base64.b64encode(YAML.encode()).decode(), agent_pool_name="nosuchpool",
            platform=models.PlatformProperties(os="Linux")))
    assert unknown.value.status_code == 400
