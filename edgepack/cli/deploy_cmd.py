"""``edgepack deploy``: signed artifacts to AWS (Lambda functions and layers).

One line per step on stderr, the summary on stdout (``--json`` for a JSON object).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

_KEY = click.option(
    "--key",
    "keys",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Trusted public key (PEM) the artifact must be signed with; repeat for several. Required.",
)
_REGION = click.option("--region", help="AWS region (default: AWS_REGION / the profile's).")
_ENDPOINT = click.option(
    "--endpoint-url",
    help="Send requests to this endpoint (e.g. a local emulator; AWS_ENDPOINT_URL works too).",
)
_BUCKET = click.option(
    "--bucket", help="S3 bucket for zips over Lambda's 50 MB direct-upload limit (created if missing)."
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")


def _step(message: str) -> None:
    click.echo(f"deploy: {message}", err=True)


def _load_keys(keys: tuple[Path, ...]) -> list[Any]:
    from ..signing.keys import load_public_keys

    if not keys:
        raise click.UsageError(
            "--key is required: the artifact is verified against it before anything is sent"
        )
    return load_public_keys(list(keys))


def _print(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
        return
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        if value is not None:
            click.echo(f"{key:<{width}}  {value}")


@click.group()
def deploy() -> None:
    """Deploy signed artifacts to AWS: Lambda functions and layers."""


@deploy.command("lambda")
@click.argument("artifact", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--function", "function", help="Function name (default: the manifest's function.name or project name)."
)
@click.option("--alias", default="live", show_default=True, help="Alias that receives the new version.")
@click.option(
    "--canary",
    type=float,
    metavar="PERCENT",
    help="Send PERCENT (0-100) of the alias's traffic to the new version.",
)
@click.option("--promote", is_flag=True, help="Finish a canary: the alias moves to the canary version.")
@click.option("--rollback", is_flag=True, help="Abort a canary, or return the alias to its previous version.")
@_KEY
@click.option("--role", help="Execution role ARN (required to create the function).")
@_BUCKET
@_REGION
@_ENDPOINT
@click.option(
    "--layer",
    "layers",
    multiple=True,
    metavar="ARN",
    help="Attach this layer version instead of the artifact's own layer (repeatable).",
)
@click.option(
    "--skip-smoke", is_flag=True, help="Do not run the recorded sample through the zip before deploying."
)
@_JSON
def deploy_lambda(
    artifact: Path | None,
    function: str | None,
    alias: str,
    canary: float | None,
    promote: bool,
    rollback: bool,
    keys: tuple[Path, ...],
    role: str | None,
    bucket: str | None,
    region: str | None,
    endpoint_url: str | None,
    layers: tuple[str, ...],
    skip_smoke: bool,
    as_json: bool,
) -> None:
    """Deploy ARTIFACT (a signed Lambda zip) to a function and move ALIAS to the new version.

    The zip is verified against --key first and refused (exit 4) before any request if it
    is unsigned or changed; every value is checked (exit 2); the sample recorded at build
    runs through the exact zip locally (exit 1 when it no longer matches). Then the code
    goes up (through S3 above 50 MB), the function is created or updated, a version is
    published and the alias moves: at once, or as a --canary; --promote and --rollback
    change only the alias (ARTIFACT optional; when given, a promote checks the canary runs it).
    """
    from ..deploy.pipeline import LambdaOptions, change_alias, deploy_lambda

    if sum((canary is not None, promote, rollback)) > 1:
        raise click.UsageError("--canary, --promote and --rollback exclude each other")
    if promote or rollback:
        if layers or role or bucket or skip_smoke:
            raise click.UsageError("--promote/--rollback change only the alias: no --layer, --role, --bucket")
        state = change_alias(
            "promote" if promote else "rollback",
            function,
            alias,
            artifact_path=artifact,
            keys=_load_keys(keys) if artifact else (),
            region=region,
            endpoint_url=endpoint_url,
            step=_step,
        )
        _print(
            {
                "function": state.function_arn,
                "alias": state.alias,
                "version": state.version,
                "routing": state.routing(),
                "previous": state.previous,
            },
            as_json,
        )
        return
    if artifact is None:
        raise click.UsageError("ARTIFACT is required (except with --promote or --rollback)")
    options = LambdaOptions(
        alias=alias,
        function=function,
        role=role,
        bucket=bucket,
        canary_percent=canary,
        layer_arns=tuple(layers) if layers else None,
        smoke=not skip_smoke,
    )
    result = deploy_lambda(
        artifact, _load_keys(keys), options, region=region, endpoint_url=endpoint_url, step=_step
    )
    _print(
        {
            "function": result.function_arn,
            "version": result.version,
            "alias": result.alias.alias,
            "routing": result.alias.routing(),
            "previous": result.alias.previous,
            "created": result.created,
            "layer": result.layer.arn if result.layer else (", ".join(layers) or None),
            "uploaded_bytes": result.uploaded,
        },
        as_json,
    )


@deploy.command("layer")
@click.argument("layer_zip", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="Layer name (default: the one the layer's manifest suggests).")
@_KEY
@_BUCKET
@_REGION
@_ENDPOINT
@_JSON
def deploy_layer_cmd(
    layer_zip: Path,
    name: str | None,
    keys: tuple[Path, ...],
    bucket: str | None,
    region: str | None,
    endpoint_url: str | None,
    as_json: bool,
) -> None:
    """Publish LAYER_ZIP (a signed layer zip) as a Lambda layer version, or reuse the latest
    version when it holds the same bytes; prints the version ARN."""
    from ..deploy.pipeline import deploy_layer

    result = deploy_layer(
        layer_zip,
        _load_keys(keys),
        name=name,
        bucket=bucket,
        region=region,
        endpoint_url=endpoint_url,
        step=_step,
    )
    if as_json:
        _print(
            {
                "arn": result.arn,
                "name": result.name,
                "version": result.version,
                "reused": result.reused,
                "uploaded_bytes": result.uploaded,
            },
            True,
        )
    else:
        click.echo(result.arn)
