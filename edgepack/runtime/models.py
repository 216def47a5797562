"""The models one server answers for: several artifact roots loaded into a registry.

Each artifact is wired as the Lambda adapter wires its one: manifest, the user's hooks
(``on_event`` receives every telemetry event), the predictor (wrapped by
``_predictor_for`` when the manifest opts into dynamic batching) and a ``DataPlane``.
Models are named by the manifest's ``name`` and versioned by its ``version``; two
artifacts with one name are refused before any model loads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from .batching import DynamicBatcher, batcher_from_settings
from .dataplane import DataPlane
from .errors import InferenceError, ModelLoadError
from .hooks import load_hooks
from .manifest import ATTESTATION_FILE, MANIFEST_FILE, Manifest
from .predictor import Predictor
from .telemetry import Sink, Telemetry


class DuplicateModelError(ModelLoadError):
    """Two artifacts carry the same model name."""

    code = "duplicate_model"


class ModelNotFoundError(InferenceError):
    """No model (or no such version of it) is served under that name."""

    status = 404
    code = "model_not_found"


@dataclass(frozen=True)
class ServedModel:
    """One loaded artifact, ready to answer."""

    name: str
    version: str
    root: Path
    manifest: Manifest
    dataplane: DataPlane
    telemetry: Telemetry
    artifact_sha256: str  # of attestation.dsse.json, else of edgepack.json
    digest_of: str  # which of those two files the digest is of

    @property
    def backend(self) -> str:
        return str(self.dataplane.predictor.backend.name)


def artifact_digest(root: Path) -> tuple[str, str]:
    """A stable digest of the artifact: sha256 of its signed attestation (which names every
    file's digest), or of its manifest when it is unsigned. Returns (hex digest, file name)."""
    for name in (ATTESTATION_FILE, MANIFEST_FILE):
        path = Path(root) / name
        if path.is_file():
            return hashlib.sha256(path.read_bytes()).hexdigest(), name
    raise ModelLoadError(f"{root}: no {MANIFEST_FILE}")


def _predictor_for(root: Path, manifest: Manifest, predictor: Predictor) -> Predictor | DynamicBatcher:
    """What the data plane calls ``predict`` on: the predictor itself, or a dynamic batcher
    around it when the manifest's ``runtime.settings.batching`` asks for one."""
    return batcher_from_settings(predictor, manifest.runtime.settings)


class ModelRegistry:
    """Served models by name; lookups raise ``ModelNotFoundError`` (404)."""

    def __init__(self, models: Iterable[ServedModel]) -> None:
        self._models: dict[str, ServedModel] = {}
        for model in models:
            if model.name in self._models:
                raise DuplicateModelError(f"two artifacts are both named {model.name!r}")
            self._models[model.name] = model

    def __iter__(self) -> Any:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    @property
    def names(self) -> list[str]:
        return list(self._models)

    def get(self, name: str, version: str | None = None) -> ServedModel:
        """The model named ``name`` (at ``version`` when given)."""
        model = self._models.get(name)
        if model is None:
            served = ", ".join(repr(n) for n in self._models) or "none"
            raise ModelNotFoundError(f"unknown model {_clip(name)!r}; served: {served}")
        if version is not None and version != model.version:
            raise ModelNotFoundError(
                f"model {name!r} has no version {_clip(version)!r}; served: {model.version!r}"
            )
        return model

    @classmethod
    def load(
        cls,
        roots: Sequence[Path],
        sinks: Callable[[str, Telemetry], Sequence[Sink]] = lambda name, telemetry: (),
    ) -> ModelRegistry:
        """Load every artifact root. Manifests are read and names checked first, so a
        duplicate is refused before any model is loaded. ``sinks(name, telemetry)`` gives
        the telemetry sinks for a model, added before it loads (``model_loaded`` included)."""
        roots = [Path(r) for r in roots]
        manifests = [Manifest.load(root) for root in roots]
        seen: dict[str, Path] = {}
        for root, manifest in zip(roots, manifests, strict=True):
            if manifest.name in seen:
                raise DuplicateModelError(
                    f"model name {manifest.name!r} is used by both {seen[manifest.name]} and {root}"
                )
            seen[manifest.name] = root
        return cls(_load_one(root, manifest, sinks) for root, manifest in zip(roots, manifests, strict=True))


def _load_one(
    root: Path, manifest: Manifest, sinks: Callable[[str, Telemetry], Sequence[Sink]]
) -> ServedModel:
    telemetry = Telemetry()
    for sink in sinks(manifest.name, telemetry):
        telemetry.add_sink(sink)
    hooks = load_hooks(manifest.hooks, root)
    if hooks.on_event is not None:
        telemetry.add_sink(hooks.on_event)
    predictor = Predictor.from_artifact(root, telemetry, manifest=manifest)
    dataplane = DataPlane(
        # A DynamicBatcher has the Predictor's predict/signature/backend/telemetry.
        cast(Predictor, _predictor_for(root, manifest, predictor)),
        model_name=manifest.name,
        model_version=manifest.version,
        hooks=hooks,
        telemetry=telemetry,
    )
    digest, digest_of = artifact_digest(root)
    return ServedModel(
        name=manifest.name,
        version=manifest.version,
        root=root,
        manifest=manifest,
        dataplane=dataplane,
        telemetry=telemetry,
        artifact_sha256=digest,
        digest_of=digest_of,
    )


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
