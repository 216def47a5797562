"""``edgepack publish``: put verified bundles on a channel and sign the channel's new index.

Order of work, so that a refusal leaves the channel as it was and a crash leaves it
consistent: every bundle is verified and every input checked first; then blobs and
bundles are written (content-addressed, each write atomic); the signed index goes last,
so no index ever names a blob that is not there yet.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInputError
from ..runtime.device.channel import BLOB_DIR, INDEX_FILE, Entry, Index
from ..runtime.trust.public_keys import PublicKey, load_public_key_pem
from ..signing.keys import Signer
from .bundle_files import PublishedBundle, unpack_verified
from .index import merge, read_previous, sign_index, with_urls
from .iot import check_thing_group_name, create_job, job_document, job_id, thing_group_arn
from .store import MAX_PRESIGN_S, DirStore, S3Store, Store, open_store


class RolloutError(BadInputError):
    """--rollout is not a percentage from 0 to 100 (exit 2)."""


@dataclass
class PublishResult:
    channel: str
    sequence: int
    entries: list[Entry]
    index_url: str
    blobs_written: int = 0
    bytes_written: int = 0
    jobs: list[str] = field(default_factory=list)


def check_rollout(percent: float) -> float:
    if not isinstance(percent, (int, float)) or math.isnan(percent) or not 0 <= percent <= 100:
        raise RolloutError(f"{percent}: a rollout percentage is from 0 to 100", where="--rollout")
    return int(percent) if float(percent).is_integer() else round(float(percent), 2)


def blob_key(sha256: str) -> str:
    return f"{BLOB_DIR}/{sha256}"


def _entry(bundle: PublishedBundle, rollout: float) -> Entry:
    return Entry(
        name=bundle.name,
        version=bundle.version,
        target=bundle.target,
        rollout_percent=rollout,
        bundle=bundle.bundle,
        attestation=bundle.attestation,
        files=bundle.files,
    )


def _write_blobs(store: Store, bundle: PublishedBundle, result: PublishResult) -> None:
    from ..runtime.manifest import ATTESTATION_FILE

    sources = [(f, bundle.tree / f.path) for f in bundle.files]
    sources.append((bundle.attestation, bundle.tree / ATTESTATION_FILE))
    for blob, path in sources:
        key = blob_key(blob.sha256)
        if not store.has(key, blob.size):
            store.put_file(key, path)
            result.blobs_written += 1
            result.bytes_written += blob.size
    if not store.has(bundle.bundle.path, bundle.bundle.size):
        store.put_file(bundle.bundle.path, bundle.source)
        result.bytes_written += bundle.bundle.size


def publish(
    bundles: Sequence[Path],
    channel: str,
    signer: Signer,
    *,
    trusted: Sequence[PublicKey] = (),
    rollout: float = 100,
    iot_thing_group: str | None = None,
    presign_s: int = MAX_PRESIGN_S,
) -> PublishResult:
    """Verify ``bundles`` (against the signer's key and ``trusted``), write them to ``channel``
    and sign its next index; with ``iot_thing_group``, create an AWS IoT job per bundle."""
    rollout = check_rollout(rollout)
    if not bundles:
        raise BadInputError("give at least one bundle to publish")
    if iot_thing_group is not None:
        check_thing_group_name(iot_thing_group)
    own_key = load_public_key_pem(signer.public_key_pem(), where="signing key")
    keys = [own_key, *trusted]
    store = open_store(channel)
    with tempfile.TemporaryDirectory(prefix="edgepack-publish-") as tmp:
        published = [unpack_verified(Path(b), keys, Path(tmp) / str(i)) for i, b in enumerate(bundles)]
        seen: set[tuple[str, str, str]] = set()
        for p in published:
            if (p.name, p.target, p.version) in seen:
                raise BadInputError(
                    f"{p.name} {p.version} for {p.target} is given twice", where=str(p.source)
                )
            seen.add((p.name, p.target, p.version))
        index = merge(
            read_previous(store.get_bytes(INDEX_FILE), [own_key]), [_entry(p, rollout) for p in published]
        )
        aws = group_arn = None
        if iot_thing_group is not None:
            aws = store.aws if isinstance(store, S3Store) else _aws()
            group_arn = thing_group_arn(aws, iot_thing_group)

        result = PublishResult(channel=store.location, sequence=index.sequence, entries=[], index_url="")
        for p in published:
            _write_blobs(store, p, result)
        if isinstance(store, S3Store):
            index = with_urls(index, lambda key: store.url_for(key, presign_s), blob_key)
        store.put_bytes(INDEX_FILE, sign_index(index, signer))

    result.entries = [e for e in index.entries if (e.name, e.target, e.version) in seen]
    result.index_url = store.url_for(INDEX_FILE, presign_s) or str(Path(store.location) / INDEX_FILE)
    if aws is not None and group_arn is not None:
        result.jobs = [_job(aws, group_arn, store, result, e, index) for e in result.entries]
    return result


def _aws() -> object:
    import os

    from ..deploy.aws import Aws

    aws = Aws(os.environ.get("AWS_REGION") or None)
    aws.check_credentials()
    return aws


def _job(
    aws: object, group_arn: str, store: DirStore | S3Store, result: PublishResult, entry: Entry, index: Index
) -> str:
    bundle_url = entry.bundle.url or str(Path(store.location) / entry.bundle.path)
    document = job_document(
        channel=store.location,
        index_url=result.index_url,
        entry=entry.to_json(),
        bundle_url=bundle_url,
        sequence=index.sequence,
    )
    return create_job(
        aws, group_arn, job_id(entry.name, entry.version, entry.target, index.sequence), document
    )
