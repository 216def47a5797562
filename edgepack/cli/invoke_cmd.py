"""``edgepack invoke``: run a Lambda artifact locally, as Lambda does."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import EXIT_FAILURE, EXIT_OK, ConfigError


def _read_event(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the event as JSON: {e}", where=str(path)) from e


@click.command()
@click.argument("artifact", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--event",
    "events",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Event JSON file; repeat to send several events to one warm function.",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Trusted public key (PEM); repeat for several. Without one the artifact runs UNVERIFIED.",
)
@click.option("--memory", default=1024, show_default=True, help="Memory size (MB) reported to the function.")
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    help="Seconds before the invocation is killed (x20 for arm64 artifacts run under emulation).",
)
def invoke(
    artifact: Path, events: tuple[Path, ...], keys: tuple[Path, ...], memory: int, timeout: float
) -> None:
    """Invoke ARTIFACT (a Lambda zip) in a fresh Lambda-like process.

    With --key the artifact is verified (signature, every file's digest and mode) by the
    reader that unpacks it, and a refusal exits 4 before anything runs. Without --key the
    same reader unpacks it with every check but the signature, and a warning says so.

    The function runs under the artifact's own Python with only the artifact and what
    Lambda's runtime provides, through awslambdaric and a Runtime API on 127.0.0.1.
    Responses go to stdout; function logs and the REPORT line to stderr.
    """
    from ..invoke.local import invoke_local_many
    from ..signing.keys import load_public_keys

    trusted = load_public_keys(list(keys)) if keys else None
    if trusted is None:
        click.echo(
            f"edgepack: WARNING: no --key given: running UNVERIFIED code from {artifact} "
            "(its signature is not checked; pass --key with the signer's public key)",
            err=True,
        )
    results = invoke_local_many(
        artifact, [_read_event(p) for p in events], timeout_s=timeout, memory_mb=memory, keys=trusted
    )
    failed = False
    for result in results:
        if result.logs:
            click.echo(result.logs.rstrip("\n"), err=True)
        if result.init_error or result.error:
            failed = True
            click.echo(json.dumps(result.init_error or result.error), err=False)
        else:
            body = result.response
            click.echo(
                json.dumps(body) if not isinstance(body, bytes | bytearray) else body.decode(errors="replace")
            )
        click.echo(result.report_line(), err=True)
    sys.exit(EXIT_FAILURE if failed else EXIT_OK)
