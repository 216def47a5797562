"""The README's pass reference is the one the passes' typed configs generate."""

from __future__ import annotations

from pathlib import Path

from edgepack.pass_reference import BEGIN, END, reference_markdown


def test_readme_pass_reference_is_current(repo_root: Path) -> None:
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    start, stop = readme.index(BEGIN), readme.index(END) + len(END)
    assert readme[start:stop] == reference_markdown(), (
        "run `python -m edgepack.pass_reference` into README.md"
    )


def test_every_option_is_described() -> None:
    for line in reference_markdown().splitlines()[3:-1]:
        assert not line.rstrip().endswith("|  |"), f"an option without a description: {line}"
