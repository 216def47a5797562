"""AWS Lambda's Python runtimes and the glibc of the OS each runs on.

A module of its own (standard library only) so that ``edgepack invoke`` can check a
runtime without loading the target profiles (pydantic, YAML).
"""

from __future__ import annotations

# python3.11 and older run on Amazon Linux 2, python3.12 and newer on Amazon Linux 2023.
LAMBDA_RUNTIMES: dict[str, str] = {
    "python3.10": "2.26",
    "python3.11": "2.26",
    "python3.12": "2.34",
    "python3.13": "2.34",
    "python3.14": "2.34",
}
