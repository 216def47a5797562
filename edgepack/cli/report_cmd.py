"""``edgepack report``: compare the artifacts of a build."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("dist", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Report directory (default DIST/report).")
@click.option("--runs", default=200, show_default=True, help="Timed inferences per target for latency.")
@click.option(
    "--project",
    type=click.Path(exists=True, path_type=Path),
    help="Project whose original model is measured as the baseline row.",
)
def report(dist: Path, out: Path | None, runs: int, project: Path | None) -> None:
    """Write an HTML report (and PNG plots) comparing the targets built into DIST:
    size, latency p50/p99 on this machine, fidelity and accuracy vs the original model."""
    from ..report import write_report

    index = write_report(dist, out or dist / "report", runs=runs, project=project)
    click.echo(f"wrote {index}")
