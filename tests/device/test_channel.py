"""The signed channel index on the device side: signature, shape, sequence (freeze and replay),
channel locations, and the staged-rollout buckets."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from edgepack.publish.index import sign_index
from edgepack.runtime.device import rollout
from edgepack.runtime.device.channel import (
    INDEX_FILE,
    PAYLOAD_TYPE,
    Blob,
    Channel,
    Entry,
    Index,
    accept_sequence,
    fetch_index,
    open_index,
)
from edgepack.runtime.device.download import ChannelURLError
from edgepack.runtime.trust.errors import BadSignatureError, MalformedAttestationError, RollbackError
from edgepack.runtime.trust.public_keys import load_public_keys
from edgepack.signing.dsse import sign_envelope
from edgepack.signing.keys import Ed25519FileSigner, generate_keypair

from .http_channel import serving


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _entry(version: str, percent: float = 100) -> Entry:
    files = (
        Blob(sha256=_sha(f"model {version}"), size=10, path="model/model.bin", mode=0o644),
        Blob(sha256=_sha("predict"), size=20, path="predict.py", mode=0o755),
    )
    return Entry(
        name="digits",
        version=version,
        target="intel-openvino",
        rollout_percent=percent,
        bundle=Blob(
            sha256=_sha(f"bundle {version}"), size=30, path=f"bundles/digits-{version}.bundle.tar.gz"
        ),
        attestation=Blob(sha256=_sha(f"att {version}"), size=40),
        files=files,
    )


@pytest.fixture(scope="module")
def signers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("channel-keys")
    key, pub = generate_keypair(work / "dev")
    other_key, other_pub = generate_keypair(work / "other")
    return {
        "signer": Ed25519FileSigner.from_file(key),
        "other": Ed25519FileSigner.from_file(other_key),
        "keys": load_public_keys([pub]),
        "other_keys": load_public_keys([other_pub]),
    }


def _index(sequence: int, *entries: Entry) -> Index:
    return Index(sequence=sequence, entries=entries or (_entry("1.0.0"),))


def test_a_signed_index_opens_with_the_trusted_key(signers: dict[str, Any]) -> None:
    index = _index(3, _entry("1.0.0"), _entry("1.1.0", 5))
    opened = open_index(sign_index(index, signers["signer"]), signers["keys"])
    assert opened == index


def test_a_tampered_index_is_refused(signers: dict[str, Any]) -> None:
    envelope = json.loads(sign_index(_index(3), signers["signer"]))
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["entries"][0]["rollout_percent"] = 100
    payload["entries"][0]["files"][0]["sha256"] = _sha("evil")
    envelope["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    with pytest.raises(BadSignatureError) as caught:
        open_index(json.dumps(envelope).encode(), signers["keys"])
    assert caught.value.exit_code == 4
    assert INDEX_FILE in caught.value.hint()


def test_an_index_signed_by_another_key_is_refused(signers: dict[str, Any]) -> None:
    with pytest.raises(BadSignatureError, match="no signature by a trusted key"):
        open_index(sign_index(_index(3), signers["other"]), signers["keys"])


def test_another_payload_type_is_refused(signers: dict[str, Any]) -> None:
    payload = json.dumps(_index(1).to_json()).encode()
    envelope = sign_envelope(payload, "application/vnd.in-toto+json", signers["signer"])
    with pytest.raises(MalformedAttestationError, match="payload type"):
        open_index(json.dumps(envelope).encode(), signers["keys"])


def test_not_json_is_refused(signers: dict[str, Any]) -> None:
    with pytest.raises(MalformedAttestationError, match="not JSON"):
        open_index(b"<html>captive portal</html>", signers["keys"])


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("rollout_percent",), 150, "outside 0-100"),
        (("rollout_percent",), -1, "outside 0-100"),
        (("rollout_percent",), True, "wrong type"),
        (("version",), "1.0.0-beta", "not numeric"),
        (("files", 0, "path"), "../../etc/passwd", "safe relative path"),
        (("files", 0, "path"), "/etc/passwd", "safe relative path"),
        (("files", 0, "mode"), "0777", "not 0644 or 0755"),
        (("files", 0, "mode"), "4755", "not 0644 or 0755"),
        (("files", 0, "sha256"), "ABC", "lowercase hex"),
        (("files", 0, "size"), -5, "negative"),
        (("attestation",), None, "not an object"),
    ],
)
def test_a_signed_but_malformed_index_is_refused(
    signers: dict[str, Any], path: tuple[Any, ...], value: Any, message: str
) -> None:
    doc = _index(2).to_json()
    node: Any = doc["entries"][0]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    envelope = sign_envelope(json.dumps(doc).encode(), PAYLOAD_TYPE, signers["signer"])
    with pytest.raises(MalformedAttestationError, match=message):
        open_index(json.dumps(envelope).encode(), signers["keys"])


def test_a_release_listed_twice_is_refused(signers: dict[str, Any]) -> None:
    doc = _index(2).to_json()
    doc["entries"].append(doc["entries"][0])
    envelope = sign_envelope(json.dumps(doc).encode(), PAYLOAD_TYPE, signers["signer"])
    with pytest.raises(MalformedAttestationError, match="listed twice"):
        open_index(json.dumps(envelope).encode(), signers["keys"])


def test_a_lower_sequence_is_refused_equal_and_higher_accepted(tmp_path: Path) -> None:
    state = tmp_path / "channel-state.json"
    channel = Channel.parse(str(tmp_path / "channel"))
    accept_sequence(state, channel, _index(5))
    accept_sequence(state, channel, _index(5))  # the same index polled again
    with pytest.raises(RollbackError, match="sequence 4 is lower than 5") as caught:
        accept_sequence(state, channel, _index(4))
    assert caught.value.exit_code == 4
    accept_sequence(state, channel, _index(6))
    with pytest.raises(RollbackError):
        accept_sequence(state, channel, _index(5))
    # Another channel keeps its own count.
    accept_sequence(state, Channel.parse(str(tmp_path / "other")), _index(1))


def test_a_replayed_index_over_http_is_refused(signers: dict[str, Any], tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    state = tmp_path / "root" / "channel-state.json"
    state.parent.mkdir()
    old = sign_index(_index(1, _entry("1.0.0")), signers["signer"])
    new = sign_index(_index(2, _entry("1.0.0"), _entry("1.1.0")), signers["signer"])
    with serving(served) as server:
        channel = Channel.parse(server.url)
        (served / INDEX_FILE).write_bytes(new)
        assert fetch_index(channel, signers["keys"], state).sequence == 2
        (served / INDEX_FILE).write_bytes(old)  # an attacker serving the older, validly signed index
        with pytest.raises(RollbackError, match="replayed or frozen"):
            fetch_index(channel, signers["keys"], state)
        # A presigned-style index URL (query string) is the same channel.
        presigned = Channel.parse(f"{server.url}/{INDEX_FILE}?X-Amz-Signature=abc")
        assert presigned.identity == channel.identity
        with pytest.raises(RollbackError):
            fetch_index(presigned, signers["keys"], state)


def test_channel_locations(tmp_path: Path) -> None:
    directory = Channel.parse(str(tmp_path))
    assert directory.index_location == f"{tmp_path}/{INDEX_FILE}"
    blob = Blob(sha256="a" * 64, size=1)
    assert directory.blob_location(blob) == f"{tmp_path}/blobs/sha256/{'a' * 64}"
    http = Channel.parse("https://cdn.example.com/fleet/")
    assert http.index_location == f"https://cdn.example.com/fleet/{INDEX_FILE}"
    presigned = Channel.parse(f"https://b.s3.amazonaws.com/p/{INDEX_FILE}?X-Amz-Expires=60")
    assert presigned.base == "https://b.s3.amazonaws.com/p"
    assert presigned.blob_location(Blob(sha256="b" * 64, size=1, url="https://x/y?sig")) == "https://x/y?sig"
    assert Channel.parse("s3://bucket/prefix").index_location == f"s3://bucket/prefix/{INDEX_FILE}"


@pytest.mark.parametrize("location", ["ftp://host/channel", "s3://", ""])
def test_bad_channel_locations_are_bad_input(location: str) -> None:
    with pytest.raises(ChannelURLError) as caught:
        Channel.parse(location)
    assert caught.value.exit_code == 2


def test_rollout_buckets_are_stable_spread_and_monotone() -> None:
    fleet = [f"device-{i:04d}" for i in range(1000)]
    assert rollout.bucket("device-0001", "digits", "1.1.0") == rollout.bucket(
        "device-0001", "digits", "1.1.0"
    )
    expected = int.from_bytes(hashlib.sha256(b"device-0001\x00digits\x001.1.0").digest(), "big") % 10000
    assert rollout.bucket("device-0001", "digits", "1.1.0") == expected
    chosen = {p: {d for d in fleet if rollout.eligible(d, "digits", "1.1.0", p)} for p in (0, 5, 50, 100)}
    assert len(chosen[0]) == 0 and len(chosen[100]) == 1000
    assert 25 <= len(chosen[5]) <= 80
    assert 420 <= len(chosen[50]) <= 580
    assert chosen[5] <= chosen[50] <= chosen[100]
    # Another release picks another first 5 %.
    other = {d for d in fleet if rollout.eligible(d, "digits", "1.2.0", 5)}
    assert other != chosen[5]
