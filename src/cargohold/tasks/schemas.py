"""The request bodies of the tasks API (runs, tasks, taskRuns, agent pools) as JSON Schemas, checked by the
management plane's one body check (`management.schemas.check`) before a handler reads them.

They fix the outer shapes of ACR's published definitions (api-version 2025-03-01-preview): which members are
objects, lists, strings, numbers or booleans. What a schema cannot say (a run request's kind-specific fields,
the YAML inside an encoded task, platform names) stays with `tasks/requests.py`, which answers with the line
and reason.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_TEXT = {"type": ["string", "null"], "maxLength": 1_048_576}
_FLAG = {"type": ["boolean", "null"]}
_NUMBER = {"type": ["integer", "null"]}
_OBJECT = {"type": ["object", "null"]}
_LIST = {"type": ["array", "null"], "maxItems": 1000}
_PLATFORM = {"type": ["object", "null"], "properties": {"os": _TEXT, "architecture": _TEXT, "variant": _TEXT}}
_ARGUMENTS = {**_LIST, "items": {"type": "object", "properties": {"name": _TEXT, "value": _TEXT,
                                                                    "isSecret": _FLAG}}}


def _object(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    return {"type": "object", "properties": properties, "required": required or []}


RUN_REQUEST = _object({
    "type": {"type": "string", "maxLength": 64}, "isArchiveEnabled": _FLAG, "agentPoolName": _TEXT,
    "logTemplate": _TEXT, "imageNames": {**_LIST, "items": {"type": "string", "maxLength": 1024}},
    "isPushEnabled": _FLAG, "noCache": _FLAG, "dockerFilePath": _TEXT, "target": _TEXT, "arguments": _ARGUMENTS,
    "values": _ARGUMENTS, "timeout": _NUMBER, "platform": _PLATFORM, "agentConfiguration": _OBJECT,
    "sourceLocation": _TEXT, "credentials": _OBJECT, "encodedTaskContent": _TEXT, "encodedValuesContent": _TEXT,
    "taskFilePath": _TEXT, "valuesFilePath": _TEXT, "taskId": _TEXT, "overrideTaskStepProperties": _OBJECT,
}, ["type"])

RUN_UPDATE = _object({"isArchiveEnabled": _FLAG})

_RESOURCE = {"location": _TEXT, "tags": _OBJECT, "identity": _OBJECT}

TASK = _object({**_RESOURCE, "properties": _object({
    "status": _TEXT, "platform": _PLATFORM, "agentConfiguration": _OBJECT, "agentPoolName": _TEXT,
    "timeout": _NUMBER, "step": _OBJECT, "trigger": _OBJECT, "credentials": _OBJECT, "logTemplate": _TEXT,
    "isSystemTask": _FLAG})})

TASK_RUN = _object({**_RESOURCE, "properties": _object({"runRequest": _OBJECT, "forceUpdateTag": _TEXT})})

AGENT_POOL = _object({**_RESOURCE, "properties": _object({
    "count": _NUMBER, "tier": _TEXT, "os": _TEXT, "virtualNetworkSubnetResourceId": _TEXT})})
