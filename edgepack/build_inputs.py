"""What every target of one build shares: the project, the original model, its data and its
answers on the validation set, the signer and the cache.

Everything heavy is loaded on first use and then shared by every target: a build whose
targets all come from the cache never imports a framework, loads the model or reads the data.
The model's signature and its outputs on the validation set are cached by the model's
and the data's digests, so a build that changes one target does not run the original model
again (and does not load it at all when that target's conversions are cached too).
"""

from __future__ import annotations

import functools
import io
import json
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import BuildCache, sha256_tree
from .config import Project
from .data_digest import spec_digest
from .model.base import Batch, ModelSource
from .runtime.signature import IOSignature

Progress = Callable[[str], None]

_FACTS_FILE = "facts.json"
_OUTPUTS_FILE = "outputs.npz"


@dataclass(frozen=True)
class ModelFacts:
    """What the build needs to know about the original model without loading it."""

    format: str
    signature: IOSignature
    native_inputs: tuple[str, ...]
    native_outputs: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "signature": self.signature.to_dict(),
            "native_inputs": list(self.native_inputs),
            "native_outputs": list(self.native_outputs),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelFacts:
        return cls(
            format=data["format"],
            signature=IOSignature.from_dict(data["signature"]),
            native_inputs=tuple(data["native_inputs"]),
            native_outputs=tuple(data["native_outputs"]),
        )


@functools.cache
def edgepack_code_digest() -> str:
    """Every source file of this edgepack: a fixed bug in any stage must not be answered from
    a cache entry the buggy code wrote, whatever the version string says."""
    return sha256_tree(Path(__file__).parent)


@dataclass
class BuildInputs:
    project: Project
    model_sha256: str
    signer: Any
    cache: BuildCache
    epoch: int
    progress: Progress
    tools: dict[str, str]
    base_image: Any = None  # container_base.BaseImage for container targets, when given
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _loaded: dict[str, Any] = field(default_factory=dict, repr=False)

    # -- what keys are made of: file digests only --------------------------------------

    def data_digest(self, name: str) -> str | None:
        """The ``calibration`` or ``validation`` data's digest (None when the project has none),
        from its file when it can, else from the loaded data; hashed once per build."""
        return self._once(f"{name}_digest", lambda: self._data_digest(name))

    def _data_digest(self, name: str) -> str | None:
        spec = getattr(self.project.file, name)
        if spec is None:
            return None
        cheap = spec_digest(spec, self.project.root)
        if cheap is not None:
            return cheap
        dataset = getattr(self, name)
        return str(dataset.digest)

    # -- loaded on first use, once ----------------------------------------------------

    @property
    def source(self) -> ModelSource:
        return self._once("source", self._load_source)

    @property
    def facts(self) -> ModelFacts:
        return self._once("facts", self._load_facts)

    @property
    def calibration(self) -> Any:  # edgepack.data.Dataset | None
        return self._once("calibration", lambda: self._load_dataset("calibration"))

    @property
    def validation(self) -> Any:  # edgepack.data.Dataset | None
        return self._once("validation", lambda: self._load_dataset("validation"))

    @property
    def reference_outputs(self) -> Batch | None:
        return self._once("reference_outputs", self._load_reference)

    def load_all(self) -> None:
        """Load what a target that is not cached needs, so config, model and data errors
        are raised before any target starts."""
        for name in ("facts", "calibration", "validation", "reference_outputs"):
            getattr(self, name)

    def _once(self, name: str, load: Callable[[], Any]) -> Any:
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = load()
            return self._loaded[name]

    def _load_source(self) -> ModelSource:
        from .model.loader import load_model

        pf = self.project.file
        self.progress(f"loading model {pf.model.path}")
        return load_model(self.project.model_path, pf.model.format, pf.model.inputs, pf.model.outputs)

    def _model_key(self, **more: Any) -> str:
        return self.cache.key(
            model=self.model_sha256,
            spec=self.project.file.model.model_dump(mode="json"),
            tools=self.tools,
            code=edgepack_code_digest(),
            **more,
        )

    def _load_facts(self) -> ModelFacts:
        key = self._model_key(kind="model-facts")
        hit = self.cache.get_dir("model-facts", key)
        if hit is not None:
            return ModelFacts.from_dict(json.loads((hit / _FACTS_FILE).read_text(encoding="utf-8")))
        model = self.source.artifact
        facts = ModelFacts(model.format, model.signature, model.native_inputs, model.native_outputs)
        self._put("model-facts", key, {_FACTS_FILE: json.dumps(facts.to_dict(), sort_keys=True).encode()})
        return facts

    def _load_dataset(self, name: str) -> Any:
        from .data import load_dataset

        spec = getattr(self.project.file, name)
        if spec is None:
            return None
        where = f"{self.project.config_path}: {name}"
        classes = self.project.classes if name == "validation" else None
        return load_dataset(spec, self.project.root, self.facts.signature, where, classes=classes)

    def _load_reference(self) -> Batch | None:
        import numpy as np

        from .host_run import predict_batched

        validation = self.validation
        if validation is None:
            return None
        spec = self.project.file.validation
        assert spec is not None  # there is validation data
        # The spec too: ``samples`` takes a prefix of the same file.
        key = self._model_key(
            kind="reference-outputs", validation=[validation.digest, spec.model_dump(mode="json")]
        )
        hit = self.cache.get_dir("reference", key)
        if hit is not None:
            self.progress("the original model's outputs on the validation set: from the build cache")
            with np.load(hit / _OUTPUTS_FILE, allow_pickle=False) as stored:
                return {name: stored[name] for name in stored.files}
        source = self.source  # loaded first, so the progress lines come in the order things happen
        self.progress(f"running the original model on {validation.size} validation samples")
        outputs = predict_batched(source.predict, validation.inputs)
        buffer = io.BytesIO()
        np.savez(buffer, allow_pickle=False, **outputs)
        self._put("reference", key, {_OUTPUTS_FILE: buffer.getvalue()})
        return outputs

    def _put(self, namespace: str, key: str, files: dict[str, bytes]) -> None:
        with tempfile.TemporaryDirectory(prefix="edgepack-entry-") as tmp:
            for name, data in files.items():
                (Path(tmp) / name).write_bytes(data)
            self.cache.put_dir(namespace, key, Path(tmp))


__all__ = ["BuildInputs", "ModelFacts", "Progress", "edgepack_code_digest"]
