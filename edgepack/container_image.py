"""A container target's outputs, made from signed app bundles: the OCI image, the Dockerfile
that builds the same image, Kubernetes manifests and the image's signed statement.

The image is assembled from what ``verify_and_extract`` verified and unpacked, never from the
build's staging tree, so the image holds exactly what the bundle's signature vouches for.
Each model gets three layers, split by how often they change:

``deps``   the vendored packages (change with the runtime package pins)
``app``    the runtime core, the rendered server entry point and the user's hooks
``model``  the model files with the manifest, the attestation and the health sample,
           which all change when the model does

so a model-only change replaces one layer. Models live at ``/app/models/<name>``; the
server runs from the first one's tree (its runtime and packages), like ``edgepack serve``.

Output directory (``dist/<name>-<version>-<target>/``)::

    oci/                         OCI image layout, tagged (only when a base image is given)
    image.dsse.json              DSSE-signed in-toto statement: the image manifest and the bundles
    Dockerfile, .dockerignore    docker build context ...
    <bundle>.tar.gz              ... with the signed bundles it ADDs (hard links when possible)
    kubernetes/                  KServe InferenceService, Deployment + Service
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .cache import sha256_file
from .errors import ConfigError
from .packaging.archive import iter_tree
from .runtime.manifest import ATTESTATION_FILE, MANIFEST_FILE
from .runtime.sample import SAMPLE_FILE
from .signing.verify_image import IMAGE_ATTESTATION

APP_ROOT = "/app/models"
SERVER_MODULE = "edgepack_runtime.http_server"
IMAGE_STATEMENT_TYPE = "https://edgepack.dev/buildtypes/oci-image/v1"
_APP_TOP = ("edgepack_runtime", "serve.py", "handler.py", "edgepack_user_hooks.py", "__pycache__")
_MODEL_TOP = ("model", MANIFEST_FILE, ATTESTATION_FILE, SAMPLE_FILE)


@dataclass(frozen=True)
class ContainerOutputs:
    directory: Path
    layout: Path | None
    tag: str
    manifest_digest: str | None
    layers: dict[str, str]  # layer name -> blob digest
    note: str  # one line for the build's progress and summary

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "layout": str(self.layout) if self.layout else None,
            "tag": self.tag,
            "manifest_digest": self.manifest_digest,
            "layers": self.layers,
        }


def layer_of(relpath: str) -> str:
    """Which of the three layers a file of the artifact tree belongs to."""
    top = relpath.split("/", 1)[0]
    if top in _MODEL_TOP:
        return "model"
    if top in _APP_TOP:
        return "app"
    return "deps"


def _layers_for(name: str, root: Path, image_dir: str) -> list[Any]:
    from .packaging.oci import LayerFile, LayerSpec

    groups: dict[str, list[Any]] = {"deps": [], "app": [], "model": []}
    for rel, path in iter_tree(root):
        groups[layer_of(rel)].append(LayerFile(dest=f"{image_dir}/{rel}", source=path))
    return [LayerSpec(name=f"{name}/{kind}", files=tuple(files)) for kind, files in groups.items() if files]


def _image_settings(manifests: Sequence[dict[str, Any]], port: int, python_exe: str) -> dict[str, Any]:
    first = manifests[0]
    dirs = [f"{APP_ROOT}/{m['name']}" for m in manifests]
    return {
        "entrypoint": [python_exe, "-S", "-m", SERVER_MODULE],
        "cmd": dirs,
        "workdir": dirs[0],
        "env": {
            "EDGEPACK_HOST": "0.0.0.0",  # the container's own network namespace
            "EDGEPACK_PORT": str(port),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
        },
        "healthcheck": [python_exe, "-S", "-m", SERVER_MODULE, "probe", "--port", str(port)],
        "title": first["name"] if len(manifests) == 1 else "+".join(m["name"] for m in manifests),
        "version": first["version"],
    }


def _labels(manifests: Sequence[dict[str, Any]], bundle_digests: Sequence[str], epoch: int) -> dict[str, str]:
    from .packaging.oci import rfc3339

    first = manifests[0]
    return {
        "org.opencontainers.image.title": "+".join(m["name"] for m in manifests),
        "org.opencontainers.image.version": str(first["version"]),
        "org.opencontainers.image.created": rfc3339(epoch),
        "org.opencontainers.image.description": f"Open Inference Protocol server, edgepack {__version__}",
        "dev.edgepack.models": json.dumps(
            [{"name": m["name"], "version": m["version"], "target": m["target"]["name"]} for m in manifests],
            sort_keys=True,
            separators=(",", ":"),
        ),
        "dev.edgepack.artifact.sha256": ",".join(bundle_digests),
    }


def _check_base(base: Any, manifests: Sequence[dict[str, Any]]) -> str:
    target = manifests[0]["target"]
    if base.arch != target["arch"]:
        raise ConfigError(
            f"base image is {base.arch}, the artifact is built for {target['arch']}", where=str(base.layout)
        )
    if base.python != target["python"] or not base.python_executable:
        raise ConfigError(
            f"base image has Python {base.python}, the artifact's packages are built for {target['python']}",
            where=str(base.layout),
        )
    return str(base.python_executable)


def write_container_outputs(
    bundles: Sequence[Path],
    dest: Path,
    *,
    keys: Sequence[Any],
    signer: Any,
    base: Any,
    port: int,
    user: str,
    resources: dict[str, Any],
    tag: str | None,
    epoch: int,
    say: Callable[[str], None] = lambda _m: None,
) -> ContainerOutputs:
    """Verify ``bundles``, then write the image (when ``base``), build context and manifests to ``dest``.

    ``tag`` defaults to the first bundle's version.
    ``dest`` is replaced as a whole: it is written beside itself and renamed into place.
    """
    from .packaging.oci import Healthcheck, ImageConfig, write_image_layout
    from .render import render_template_set
    from .runtime.trust.reader import verify_and_extract

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        staged = work / "out"
        staged.mkdir()
        manifests: list[dict[str, Any]] = []
        roots: list[Path] = []
        for bundle in bundles:
            root = work / "trees" / f"{len(roots)}"
            manifests.append(verify_and_extract(bundle, root, keys, unverified=not keys).manifest)
            roots.append(root)
        _check_models(bundles, manifests)
        tag = tag or str(manifests[0]["version"])
        digests = [sha256_file(b) for b in bundles]
        python_exe = (
            _check_base(base, manifests)
            if base is not None
            else (f"/usr/bin/python{manifests[0]['target']['python']}")
        )
        settings = _image_settings(manifests, port, python_exe)
        labels = _labels(manifests, digests, epoch)
        archives = []
        for bundle, manifest in zip(bundles, manifests, strict=True):
            archive = staged / Path(bundle).name
            _link_or_copy(Path(bundle), archive)
            archives.append({"archive": archive.name, "dir": f"{APP_ROOT}/{manifest['name']}"})

        layout = manifest_digest = None
        layer_digests: dict[str, str] = {}
        if base is not None:
            layers = [
                layer
                for m, root in zip(manifests, roots, strict=True)
                for layer in _layers_for(m["name"], root, f"{APP_ROOT}/{m['name']}")
            ]
            config = ImageConfig(
                entrypoint=tuple(settings["entrypoint"]),
                cmd=tuple(settings["cmd"]),
                env=settings["env"],
                exposed_ports=(f"{port}/tcp",),
                working_dir=settings["workdir"],
                user=user,
                labels=labels,
                stop_signal="SIGTERM",
                healthcheck=Healthcheck(
                    test=("CMD", *settings["healthcheck"]),
                    interval_s=10,
                    timeout_s=3,
                    retries=3,
                    start_period_s=30,
                ),
                architecture=manifests[0]["target"]["arch"],
                title=settings["title"],
                version=settings["version"],
            )
            say(f"writing the OCI image ({len(layers)} layers on {base.layout.name})")
            image = write_image_layout(
                staged / "oci", base=base, layers=layers, config=config, tag=tag, epoch=epoch
            )
            layout, manifest_digest = dest / "oci", image.manifest_digest
            layer_digests = {layer.name: layer.digest for layer in image.layers if not layer.from_base}
            _write_image_statement(staged / IMAGE_ATTESTATION, signer, image, bundles, digests, base, epoch)

        image_name = settings["title"]
        render_template_set(
            "oci",
            staged,
            {
                "edgepack_version": __version__,
                "project_name": manifests[0]["name"],
                "project_version": manifests[0]["version"],
                "target_name": manifests[0]["target"]["name"],
                "image_name": image_name,
                "tag": tag,
                "image_ref": f"REGISTRY/{image_name}:{tag}",
                "service_name": image_name.replace("+", "-")[:63],
                "manifest_digest": manifest_digest or "",
                "python": manifests[0]["target"]["python"],
                "python_executable": python_exe,
                "python_tag": "cp" + str(manifests[0]["target"]["python"]).replace(".", ""),
                "glibc": manifests[0]["target"].get("glibc") or "",
                "arch": manifests[0]["target"]["arch"],
                "dockerfile_base": "python:" + str(manifests[0]["target"]["python"]) + "-slim-bookworm",
                "models": archives,
                "env": settings["env"],
                "labels": labels,
                "workdir": settings["workdir"],
                "user": user,
                "port": port,
                "healthcheck": settings["healthcheck"],
                "entrypoint": settings["entrypoint"],
                "cmd": settings["cmd"],
                "resources": resources,
            },
        )
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staged, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if layout is None:
        note = (
            f"no base image: wrote the Dockerfile and build context to {dest} (no OCI image); "
            "pass --base-image or run `edgepack base-image`"
        )
    else:
        note = f"image oci:{layout}:{tag} {manifest_digest}"
    return ContainerOutputs(dest, layout, tag, manifest_digest, layer_digests, note)


def _check_models(bundles: Sequence[Path], manifests: Sequence[dict[str, Any]]) -> None:
    seen: dict[str, Path] = {}
    first = manifests[0]
    for bundle, manifest in zip(bundles, manifests, strict=True):
        where = str(bundle)
        if manifest["target"].get("kind") not in ("container", "device"):
            raise ConfigError(
                f"a {manifest['target'].get('kind')} artifact cannot go into an image", where=where
            )
        if manifest["name"] in seen:
            raise ConfigError(
                f"model {manifest['name']!r} is already in this image (from {seen[manifest['name']]})",
                where=where,
            )
        seen[manifest["name"]] = bundle
        for key in ("arch", "python"):
            if manifest["target"][key] != first["target"][key]:
                raise ConfigError(f"{key} {manifest['target'][key]} differs from {bundles[0]}'s", where=where)
        if manifest["runtime"].get("packages") != first["runtime"].get("packages"):
            raise ConfigError(
                f"vendors other runtime packages than {bundles[0]}: one server process runs one runtime tree",
                where=where,
            )


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _write_image_statement(
    path: Path,
    signer: Any,
    image: Any,
    bundles: Sequence[Path],
    digests: Sequence[str],
    base: Any,
    epoch: int,
) -> None:
    """Sign an in-toto statement whose subjects are the image manifest and the bundles in it."""
    from .packaging.oci import canonical_json, rfc3339
    from .signing.attestation import PAYLOAD_TYPE, PREDICATE_TYPE, STATEMENT_TYPE
    from .signing.dsse import sign_envelope

    subjects = [
        {
            "name": f"oci-image:{image.tag}",
            "digest": {"sha256": image.manifest_digest.removeprefix("sha256:")},
        },
        *(
            {"name": Path(b).name, "digest": {"sha256": d}}
            for b, d in sorted(zip(bundles, digests, strict=True), key=lambda p: Path(p[0]).name)
        ),
    ]
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": IMAGE_STATEMENT_TYPE,
                "externalParameters": {"tag": image.tag},
                "resolvedDependencies": [
                    {
                        "name": f"base:{base.tag or ''}",
                        "digest": {"sha256": base.manifest_digest.removeprefix("sha256:")},
                    },
                    *(
                        {"name": Path(b).name, "digest": {"sha256": d}}
                        for b, d in zip(bundles, digests, strict=True)
                    ),
                ],
            },
            "runDetails": {
                "builder": {
                    "id": "https://edgepack.dev/builder/edgepack",
                    "version": {"edgepack": __version__},
                },
                "metadata": {"startedOn": rfc3339(epoch), "finishedOn": rfc3339(epoch)},
            },
        },
    }
    envelope = sign_envelope(canonical_json(statement), PAYLOAD_TYPE, signer)
    path.write_text(json.dumps(envelope, sort_keys=True, indent=2) + "\n", encoding="utf-8")


# -- build-side wiring ----------------------------------------------------------------------


def resolve_base_image(project: Any, cli_path: Path | None, cache: Any) -> Any:
    """The base image for the project's image targets (``--base-image`` over the config), or None.

    Image targets are container targets and Lambda targets in their image form
    (``function.package: image``), which cannot be built without one."""
    lambda_image = project.file.function.package == "image"
    imaged = [p for p in project.targets if p.kind == "container" or (p.kind == "lambda" and lambda_image)]
    if not imaged:
        return None
    configured = project.file.container.base_image
    path = cli_path if cli_path is not None else (project.resolve(configured) if configured else None)
    if path is None:
        if lambda_image and any(p.kind == "lambda" for p in imaged):
            raise ConfigError(
                "function.package: image needs a base image: pass --base-image or set container.base_image "
                "(e.g. one written by `edgepack base-image`)",
                where=str(project.config_path),
            )
        return None
    from .container_base import load_base_image

    base = load_base_image(Path(path), cache=cache)
    for profile in imaged:
        if base.arch != profile.arch:
            raise ConfigError(
                f"base image is {base.arch}, target {profile.name} is {profile.arch}", where=str(path)
            )
    return base


# The Lambda runtime interface client: the image form's entrypoint, vendored with the runtime.
AWSLAMBDARIC = "awslambdaric==4.2.2"
LAMBDA_IMAGE_BYTES = 10 * 1024**3  # Lambda's limit for an image's uncompressed size


def fit_profile_to_base(profile: Any, base: Any, function: Any = None) -> Any:
    """An image target's profile, fitted to its base image: the base's Python and glibc decide the
    wheel tags. A Lambda target in its image form (``function.package: image``) is packaged as
    a signed bundle made into an image whose entrypoint is awslambdaric; an image brings its
    own Python, so ``lambda_runtime`` applies to zips only."""
    lambda_image = profile.kind == "lambda" and function is not None and function.package == "image"
    if base is None or not (profile.kind == "container" or lambda_image):
        return profile
    update: dict[str, Any] = {"python": base.python or profile.python, "glibc": base.glibc or profile.glibc}
    if lambda_image:
        from .targets import Limits

        update["packager"] = "lambda-image"
        # The init check runs the function under the image's Python, not a managed runtime's.
        update["lambda_runtime"] = f"python{update['python']}"
        update["runtime_packages"] = [*profile.runtime_packages, AWSLAMBDARIC]
        update["limits"] = Limits(zipped_bytes=None, unzipped_bytes=LAMBDA_IMAGE_BYTES)
    return profile.model_copy(update=update)


def container_outputs_for(final: Path, shared: Any, profile: Any) -> ContainerOutputs:
    """The build's container outputs for one target's verified bundle, in ``<bundle name>/`` beside it."""
    from .signing.keys import load_public_key_pem

    spec = profile.container
    assert spec is not None  # container profiles carry one (targets.py)
    name = final.name.removesuffix(".tar.gz")
    return write_container_outputs(
        [final],
        final.with_name(name),
        keys=[load_public_key_pem(shared.signer.public_key_pem())],
        signer=shared.signer,
        base=shared.base_image,
        port=spec.port,
        user=spec.user,
        resources=spec.resources.model_dump(),
        tag=shared.project.file.container.tag or shared.project.version,
        epoch=shared.epoch,
        say=lambda m: shared.progress(f"[{profile.name}] {m}"),
    )


# -- Lambda's container-image form -------------------------------------------------------

LAMBDA_TASK_ROOT = "/var/task"


def write_lambda_image(
    bundle: Path,
    dest: Path,
    *,
    keys: Sequence[Any],
    signer: Any,
    base: Any,
    tag: str,
    epoch: int,
    image_repository: str | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> ContainerOutputs:
    """Lambda's container-image form of a verified bundle: its tree at ``/var/task`` in three
    layers, ``python -m awslambdaric handler.handler`` as the entrypoint, the signed image
    statement, and (given the ECR repository) serverless.yml / template.yaml for ``PackageType: Image``."""
    from .deploy_files import write_lambda_deploy_files
    from .packaging.oci import ImageConfig, write_image_layout
    from .runtime.trust.reader import verify_and_extract

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        staged = work / "out"
        staged.mkdir()
        root = work / "tree"
        manifest = verify_and_extract(bundle, root, keys, unverified=not keys).manifest
        python_exe = _check_base(base, [manifest])
        digest = sha256_file(bundle)
        config = ImageConfig(
            entrypoint=(python_exe, "-m", "awslambdaric"),
            cmd=(str(manifest["runtime"].get("entrypoint") or "handler.handler"),),
            env={
                "LAMBDA_TASK_ROOT": LAMBDA_TASK_ROOT,
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONUNBUFFERED": "1",
                "PATH": "/usr/local/bin:/usr/bin:/bin",
            },
            working_dir=LAMBDA_TASK_ROOT,
            labels=_labels([manifest], [digest], epoch),
            architecture=manifest["target"]["arch"],
            title=str(manifest["name"]),
            version=str(manifest["version"]),
        )
        say(f"writing the Lambda image (awslambdaric on {base.layout.name})")
        image = write_image_layout(
            staged / "oci",
            base=base,
            layers=_layers_for(str(manifest["name"]), root, LAMBDA_TASK_ROOT),
            config=config,
            tag=tag,
            epoch=epoch,
        )
        _write_image_statement(staged / IMAGE_ATTESTATION, signer, image, [bundle], [digest], base, epoch)
        if image_repository:
            write_lambda_deploy_files(
                bundle, manifest, staged / "deploy", image_uri=f"{image_repository}:{tag}"
            )
        _link_or_copy(Path(bundle), staged / Path(bundle).name)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staged, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    target = image_repository or f"ACCOUNT.dkr.ecr.REGION.amazonaws.com/{manifest['name']}"
    note = (
        f"Lambda image oci:{dest / 'oci'}:{tag} {image.manifest_digest}; push: "
        f"skopeo copy oci:{dest / 'oci'}:{tag} docker://{target}:{tag}"
    )
    if not image_repository:
        note += " (set function.image_repository to render serverless.yml and template.yaml for it)"
    layers = {layer.name: layer.digest for layer in image.layers if not layer.from_base}
    return ContainerOutputs(dest, dest / "oci", tag, image.manifest_digest, layers, note)


def lambda_image_for(final: Path, shared: Any, profile: Any) -> ContainerOutputs:
    """The build's Lambda image for one target's verified bundle, in ``<bundle name>/`` beside it."""
    from .signing.keys import load_public_key_pem

    function = shared.project.file.function
    return write_lambda_image(
        final,
        final.with_name(final.name.removesuffix(".tar.gz")),
        keys=[load_public_key_pem(shared.signer.public_key_pem())],
        signer=shared.signer,
        base=shared.base_image,
        tag=shared.project.file.container.tag or shared.project.version,
        epoch=shared.epoch,
        image_repository=function.image_repository,
        say=lambda m: shared.progress(f"[{profile.name}] {m}"),
    )
