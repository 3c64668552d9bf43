"""Command-line entry point ``hpc-nst``: one module per subcommand.

Each module in :data:`COMMANDS` exposes ``register(subparsers)`` which adds its parser and sets
``func`` to a callable taking the parsed namespace and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hpc_nst import __version__

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = (
    "hpc_nst.cli.transfer_cmd",
    "hpc_nst.cli.run_cmd",
    "hpc_nst.cli.status_cmd",
    "hpc_nst.cli.export_cmd",
    "hpc_nst.cli.dataset_cmd",
    "hpc_nst.cli.train_cmd",
    "hpc_nst.cli.classify_cmd",
    "hpc_nst.cli.report_cmd",
)


class UserError(Exception):
    """A problem with the user's input: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpc-nst",
        description="Neural style transfer on audio spectrograms, at dataset scale.",
    )
    parser.add_argument("--version", action="version", version=f"hpc-nst {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from hpc_nst.audio.io import AudioError
    from hpc_nst.config import ConfigError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UserError, AudioError, ConfigError, FileNotFoundError) as exc:
        print(f"hpc-nst {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hpc-nst {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
