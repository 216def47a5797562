"""``edgepack build``: optimize, check, wrap, vendor, package and sign per target."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import click

from ..errors import EXIT_FAILURE, EXIT_OK, EdgepackError


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f} MB"


def _metric(fidelity: dict[str, Any], name: str, fmt: str = "{:.4f}") -> str:
    value = (fidelity.get("metrics") or {}).get(name)
    return "-" if value is None else fmt.format(value)


def _precision(r: Any) -> str:
    if not r.precision:
        return "-"
    return f"{r.precision} mixed ({r.float_layers} float)" if r.float_layers else r.precision


def format_summary(result: Any) -> str:
    """The per-target table printed after a build."""
    header = (
        "target",
        "status",
        "variant",
        "backend",
        "precision",
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
                f"{r.backend}/{r.format}" if r.backend else "-",
                _precision(r),
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
        if r.ok and r.given_up:
            lines.append(f"{r.target}: shipped {r.variant} after {r.given_up}")
        if r.ok and r.mixed_cost:
            cost = r.mixed_cost
            lines.append(
                f"{r.target}: {r.float_layers} layer(s) kept in float cost "
                f"{cost['size_bytes'] / cost['full_int8_size_bytes']:.2f}x the size and "
                f"{cost['p50_ms'] / max(cost['full_int8_p50_ms'], 1e-9):.2f}x the p50 latency of full int8"
            )
        if r.ok and r.artifact:
            lines.append(f"{r.target}: {r.artifact}")
        if r.ok and r.layer:
            lines.append(f"{r.target}: {r.layer['artifact']} (its Lambda layer)")
        if r.ok and r.image:
            lines.append(f"{r.target}: {r.image['note']}")
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
@click.option(
    "--base-image",
    type=click.Path(exists=True, path_type=Path),
    help="Base image for container targets: an OCI layout or archive (overrides container.base_image).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def build(
    project: Path,
    targets: tuple[str, ...],
    out: Path,
    key: Path | None,
    base_image: Path | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Build signed artifacts for PROJECT (a directory with edgepack.yaml, or the file)."""
    from ..build import build as run_build

    started = time.perf_counter()

    def progress(message: str) -> None:
        if not quiet:
            click.echo(f"[{time.perf_counter() - started:6.1f}s] {message}", err=True)

    if not as_json:
        result = run_build(
            project, out, list(targets) or None, progress=progress, key_path=key, base_image=base_image
        )
        click.echo(format_summary(result))
        _report_failures(result)
        sys.exit(result.exit_code if not result.ok else EXIT_OK)

    # --json: stdout carries exactly one JSON document, whatever happens. Libraries that print
    # (NNCF's progress bars, converters' INFO lines, native code) write to stderr meanwhile.
    with _stdout_to_stderr() as stdout:
        try:
            result = run_build(
                project, out, list(targets) or None, progress=progress, key_path=key, base_image=base_image
            )
        except EdgepackError as e:
            click.echo(f"edgepack: error: {e.hint()}", err=True)
            _emit(stdout, {"ok": False, "error": e.hint(), "exit_code": e.exit_code, "targets": []})
            sys.exit(e.exit_code)
        except Exception as e:
            traceback.print_exc()
            message = f"internal error: {type(e).__name__}: {e}".splitlines()[0]
            _emit(stdout, {"ok": False, "error": message, "exit_code": EXIT_FAILURE, "targets": []})
            sys.exit(EXIT_FAILURE)
        _report_failures(result)
        _emit(stdout, {**result.to_dict(), "exit_code": result.exit_code})
    sys.exit(result.exit_code if not result.ok else EXIT_OK)


def _report_failures(result: Any) -> None:
    for r in result.results:
        if not r.ok:
            click.echo(f"edgepack: error: {r.error}", err=True)


def _emit(stream: TextIO, document: dict[str, Any]) -> None:
    stream.write(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
    stream.flush()


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[TextIO]:
    """Point stdout (file descriptor 1 too, for native code) at stderr; yield the real stdout."""
    stdout = sys.stdout
    try:
        on_fd1 = stdout.fileno() == 1
    except (AttributeError, OSError, ValueError):  # a captured stream (tests): no descriptor
        on_fd1 = False
    if not on_fd1:
        with contextlib.redirect_stdout(sys.stderr):
            yield stdout
        return
    stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    real = os.fdopen(os.dup(saved), "w", encoding="utf-8")
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield real
    finally:
        real.close()
        os.dup2(saved, 1)
        os.close(saved)
