"""``edgepack build``: optimize, check, wrap, vendor, package and sign per target."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from ..errors import EXIT_OK


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f} MB"


def _metric(fidelity: dict[str, Any], name: str, fmt: str = "{:.4f}") -> str:
    value = (fidelity.get("metrics") or {}).get(name)
    return "-" if value is None else fmt.format(value)


def format_summary(result: Any) -> str:
    """The per-target table printed after a build."""
    header = (
        "target",
        "status",
        "variant",
        "format",
        "model",
        "artifact",
        "unzipped",
        "top1 agr",
        "acc drop",
    )
    rows = [header]
    for r in result.results:
        rows.append(
            (
                r.target,
                ("ok (cached)" if r.cached else "ok") if r.ok else "FAILED",
                r.variant or "-",
                f"{r.format}/{r.precision}" if r.format else "-",
                _mb(r.model_bytes),
                _mb(r.artifact_bytes),
                _mb(r.unzipped_bytes),
                _metric(r.fidelity, "top1_agreement"),
                _metric(r.fidelity, "accuracy_drop"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    for r in result.results:
        if r.ok and r.artifact:
            lines.append(f"{r.target}: {r.artifact}")
        elif not r.ok:
            lines.append(f"{r.target}: {r.error}")
    return "\n".join(lines)


@click.command()
@click.argument("project", default=".", type=click.Path(exists=True, path_type=Path))
@click.option("--target", "-t", "targets", multiple=True, help="Build only this target (repeatable).")
@click.option("--out", "-o", default="dist", show_default=True, type=click.Path(path_type=Path))
@click.option(
    "--key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Signing key (overrides signing.key).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def build(
    project: Path, targets: tuple[str, ...], out: Path, key: Path | None, as_json: bool, quiet: bool
) -> None:
    """Build signed artifacts for PROJECT (a directory with edgepack.yaml, or the file)."""
    from ..build import build as run_build

    started = time.perf_counter()

    def progress(message: str) -> None:
        if not quiet:
            click.echo(f"[{time.perf_counter() - started:6.1f}s] {message}", err=True)

    result = run_build(project, out, list(targets) or None, progress=progress, key_path=key)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, sort_keys=True, default=str))
    else:
        click.echo(format_summary(result))
    for r in result.results:
        if not r.ok:
            click.echo(f"edgepack: error: {r.error}", err=True)
    sys.exit(result.exit_code if not result.ok else EXIT_OK)
