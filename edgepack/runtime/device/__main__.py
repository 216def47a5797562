"""``python -m edgepack_runtime.device install|status|rollback|agent`` on a device.

Exit codes: 0 ok, 1 failure, 2 bad usage, 4 refused (the active version is unchanged).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from ..failures import EXIT_BAD_INPUT, EXIT_FAILURE, EdgepackError
from .agent import add_agent_parser

PROG = "edgepack-device"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Install and roll back signed edgepack bundles.")
    sub = parser.add_subparsers(dest="command", required=True)

    install = sub.add_parser("install", help="verify, health-check and switch to a bundle")
    install.add_argument("bundle", type=Path)
    install.add_argument("--root", type=Path, required=True)
    install.add_argument(
        "--trust", type=Path, action="append", required=True, help="trusted public key (PEM)"
    )
    install.add_argument("--allow-downgrade", action="store_true")
    install.add_argument(
        "--python", default=None, help="interpreter command for the health check (default: this one)"
    )
    install.add_argument("--health-timeout", type=float, default=120.0)

    status = sub.add_parser("status", help="active and previous versions, floor, journal")
    status.add_argument("--root", type=Path, required=True)

    rollback = sub.add_parser("rollback", help="switch back to the kept previous version")
    rollback.add_argument("--root", type=Path, required=True)
    rollback.add_argument("--trust", type=Path, action="append", default=[])

    add_agent_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except EdgepackError as e:
        print(f"{PROG}: error: {e.hint()}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    from . import installer

    if args.command == "install":
        from ..trust.public_keys import load_public_keys

        keys = load_public_keys(args.trust)
        python = tuple(shlex.split(args.python)) if args.python else (sys.executable,)
        options = installer.InstallOptions(
            python=python, allow_downgrade=args.allow_downgrade, health_timeout_s=args.health_timeout
        )
        result = installer.install_bundle(args.root, args.bundle, keys, options)
        print(
            json.dumps(
                {
                    "outcome": result.outcome,
                    "version": result.version,
                    "digest": result.digest,
                    "slot": str(result.slot),
                }
            )
        )
        return 0
    if args.command == "status":
        print(json.dumps(installer.status(args.root), indent=2, sort_keys=True))
        return 0
    if args.command == "rollback":
        keys = []
        if args.trust:
            from ..trust.public_keys import load_public_keys

            keys = load_public_keys(args.trust)
        result = installer.rollback(args.root, keys=keys)
        print(json.dumps({"outcome": result.outcome, "version": result.version, "slot": str(result.slot)}))
        return 0
    handler = getattr(args, "handler", None)  # subcommands added by others (agent) set a handler
    if handler is not None:
        return int(handler(args))
    print(f"{PROG}: unknown command {args.command!r}", file=sys.stderr)
    return EXIT_BAD_INPUT if args.command else EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
