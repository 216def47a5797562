"""``edgepack serve``: the Open Inference Protocol server, locally, on verified artifacts."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--key",
    "keys",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Trusted public key (PEM); repeat for several. Without one the artifacts run unverified.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", type=click.IntRange(1, 1024), help="Concurrent inferences (default: CPU count).")
@click.option("--access-log", is_flag=True, help="Log every request as a JSON line.")
@click.option(
    "--auth-tokens",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON file: model name -> sha256 hex digests of accepted bearer tokens.",
)
@click.option(
    "--python", "python", help="Interpreter to run the artifacts with (default: python<X.Y> of the artifact)."
)
def serve(
    artifacts: tuple[Path, ...],
    keys: tuple[Path, ...],
    host: str,
    port: int,
    workers: int | None,
    access_log: bool,
    auth_tokens: Path | None,
    python: str | None,
) -> None:
    """Serve ARTIFACTS (container, device or Lambda artifacts built for this host) over the
    Open Inference Protocol (KServe v2), each at /v2/models/<name>; metrics at /metrics.

    This is the server the container image runs, with the same runtime and packages.
    """
    from ..serve import serve as run
    from ..signing.keys import load_public_keys

    trusted = load_public_keys(keys) if keys else []
    if not trusted:
        click.echo(
            "edgepack: WARNING: no --key given: serving UNVERIFIED artifacts (anyone who could write "
            "them chooses the code that runs)",
            err=True,
        )
    args = ["--host", host, "--port", str(port)]
    if workers:
        args += ["--workers", str(workers)]
    if access_log:
        args.append("--access-log")
    if auth_tokens:
        args += ["--auth-tokens", str(auth_tokens.resolve())]
    sys.exit(run(artifacts, trusted, args, python))
