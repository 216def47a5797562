"""Reading members of a packaged artifact (Lambda zip or OTA tar.gz) without unpacking it."""

from __future__ import annotations

import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path


def read_artifact(artifact: Path, wanted: Callable[[str], bool]) -> tuple[dict[str, int], dict[str, bytes]]:
    """Sizes of every member, and the bytes of the members ``wanted`` picks (zip or tar.gz)."""
    sizes: dict[str, int] = {}
    contents: dict[str, bytes] = {}
    if zipfile.is_zipfile(artifact):
        with zipfile.ZipFile(artifact) as z:
            for info in z.infolist():
                sizes[info.filename] = info.file_size
                if wanted(info.filename):
                    contents[info.filename] = z.read(info)
        return sizes, contents
    with tarfile.open(artifact) as t:
        for member in t.getmembers():
            if not member.isfile():
                continue
            sizes[member.name] = member.size
            f = t.extractfile(member) if wanted(member.name) else None
            if f is not None:
                contents[member.name] = f.read()
    return sizes, contents
