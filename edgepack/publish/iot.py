"""``--iot-job``: an AWS IoT job telling a thing group's devices that a release is on the channel.

The job document points at the signed channel index and the bundle; devices still verify
both with their trusted keys, so the job is a wake-up call, never a source of trust.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import BadInputError

_JOB_ID_BAD = re.compile(r"[^a-zA-Z0-9_-]+")
_THING_GROUP = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")
OPERATION = "edgepack.install"


class ThingGroupError(BadInputError):
    """The thing group given to --iot-job is malformed or does not exist (exit 2)."""


def check_thing_group_name(name: str) -> None:
    if not _THING_GROUP.match(name):
        raise ThingGroupError(f"{name!r} is not a thing group name", where="--iot-job")


def thing_group_arn(aws: Any, name: str) -> str:
    """The group's ARN; ``ThingGroupError`` when it does not exist."""
    check_thing_group_name(name)
    answer = aws.call("iot", "DescribeThingGroup", missing_ok=True, thingGroupName=name)
    if answer is None:
        raise ThingGroupError(f"thing group {name} does not exist", where="--iot-job")
    return str(answer["thingGroupArn"])


def job_id(name: str, version: str, target: str, sequence: int) -> str:
    raw = f"edgepack-{name}-{version}-{target}-{sequence}"
    return _JOB_ID_BAD.sub("_", raw)[:64]


def job_document(
    *, channel: str, index_url: str, entry: dict[str, Any], bundle_url: str, sequence: int
) -> dict[str, Any]:
    return {
        "operation": OPERATION,
        "channel": channel,
        "index": index_url,
        "sequence": sequence,
        "name": entry["name"],
        "version": entry["version"],
        "target": entry["target"],
        "rollout_percent": entry["rollout_percent"],
        "bundle": {"url": bundle_url, "sha256": entry["bundle"]["sha256"], "size": entry["bundle"]["size"]},
    }


def create_job(aws: Any, group_arn: str, jid: str, document: dict[str, Any]) -> str:
    """Create the job (snapshot of the group's members); its ARN."""
    answer = aws.call(
        "iot",
        "CreateJob",
        jobId=jid,
        targets=[group_arn],
        document=json.dumps(document, sort_keys=True),
        description=f"edgepack: install {document['name']} {document['version']} ({document['target']})",
        targetSelection="SNAPSHOT",
    )
    return str(answer["jobArn"])
