"""Load Kubernetes manifests into the KServe SDK's and the Kubernetes client's models.

Run by the KServe virtualenv's Python (KServe pins protobuf below what TensorFlow needs, so it
cannot share edgepack's venv). Prints one JSON line per document; exits 1 naming the first
field the models refuse or do not know.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import kserve.models as kserve_models
import kubernetes.client.models as k8s_models
import yaml


class Invalid(Exception):
    pass


def _unknown_fields(given: Any, loaded: Any, where: str) -> None:
    """Fail on a key in ``given`` that the model dropped (pydantic models ignore unknown keys)."""
    if isinstance(given, dict):
        if not isinstance(loaded, dict):
            raise Invalid(f"{where}: expected an object")
        for key, value in given.items():
            if key not in loaded:
                raise Invalid(f"{where}.{key}: unknown field")
            _unknown_fields(value, loaded[key], f"{where}.{key}")
    elif isinstance(given, list):
        for i, (g, l_) in enumerate(zip(given, loaded, strict=True)):
            _unknown_fields(g, l_, f"{where}[{i}]")


def _kubernetes(type_name: str, value: Any, where: str) -> None:
    cls = getattr(k8s_models, type_name)
    try:
        obj = cls.from_dict(value)
    except Exception as e:
        raise Invalid(f"{where}: {type_name}: {str(e).splitlines()[0:3]}") from e
    _unknown_fields(value, obj.model_dump(by_alias=True, exclude_none=True), where)


def _kserve(type_name: str, value: Any, where: str) -> None:
    """Walk a KServe model by its openapi_types until Kubernetes types take over."""
    match = re.fullmatch(r"list\[(.+)\]", type_name)
    if match:
        if not isinstance(value, list):
            raise Invalid(f"{where}: expected a list")
        for i, item in enumerate(value):
            _kserve(match.group(1), item, f"{where}[{i}]")
        return
    if type_name in ("str", "int", "bool", "float", "object") or type_name.startswith("dict("):
        return
    cls = getattr(kserve_models, type_name, None)
    if cls is None:
        _kubernetes(type_name, value, where)
        return
    if not isinstance(value, dict):
        raise Invalid(f"{where}: expected an object for {type_name}")
    by_json = {json_name: attr for attr, json_name in cls.attribute_map.items()}
    for key, item in value.items():
        if key not in by_json:
            raise Invalid(f"{where}.{key}: unknown field of {type_name}")
        _kserve(cls.openapi_types[by_json[key]], item, f"{where}.{key}")


def main(paths: list[str]) -> int:
    for path in paths:
        with open(path, encoding="utf-8") as f:
            docs = list(yaml.safe_load_all(f))
        for doc in docs:
            kind = doc.get("kind")
            try:
                if kind == "InferenceService":
                    _kserve("V1beta1InferenceService", doc, kind)
                else:
                    _kubernetes(f"V1{kind}", doc, str(kind))
            except Invalid as e:
                print(f"{path}: {e}", file=sys.stderr)
                return 1
            print(json.dumps({"file": path, "kind": kind, "name": doc["metadata"]["name"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
