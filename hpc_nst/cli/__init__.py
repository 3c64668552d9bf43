"""Command-line entry point ``hpc-nst``: one module per subcommand.

Each module in :data:`COMMANDS` exposes ``register(subparsers)`` which adds its parser and sets
``func`` to a callable taking the parsed namespace and returning an exit code.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys
from pathlib import Path

from hpc_nst import __version__
from hpc_nst.errors import HpcNstError, UsageError
from hpc_nst.fsutil import settle_store_io

log = logging.getLogger("hpc_nst")

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = (
    "hpc_nst.cli.transfer_cmd",
    "hpc_nst.cli.manifest_cmd",
    "hpc_nst.cli.run_cmd",
    "hpc_nst.cli.status_cmd",
    "hpc_nst.cli.calibrate_cmd",
    "hpc_nst.cli.verify_cmd",
    "hpc_nst.cli.export_cmd",
    "hpc_nst.cli.dataset_cmd",
    "hpc_nst.cli.train_cmd",
    "hpc_nst.cli.classify_cmd",
    "hpc_nst.cli.judge_cmd",
    "hpc_nst.cli.report_cmd",
)


#: Kept for subcommand modules written before the one error hierarchy (:mod:`hpc_nst.errors`).
UserError = UsageError


class _Plain(logging.Formatter):
    """Without ``-v`` the console shows warnings as a command's own messages are shown
    (``hpc-nst: warning: ...``); ``-v`` and the log file keep time, level and logger."""

    def format(self, record: logging.LogRecord) -> str:
        return f"hpc-nst: {record.levelname.lower()}: {record.getMessage()}" + (
            "\n" + self.formatException(record.exc_info) if record.exc_info else "")


def setup_logging(verbose: int = 0, log_file: Path | None = None) -> None:
    """Send the ``hpc_nst`` loggers to stderr (warnings, as ``hpc-nst: warning: ...``; ``-v``
    info, ``-vv`` debug, each with time and logger) and, with ``log_file``, everything from
    info up to that file as well."""
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for h in list(log.handlers):
        if getattr(h, "_hpc_nst", False):
            log.removeHandler(h)
            h.close()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level)
    console.setFormatter(fmt if verbose else _Plain())
    handlers: list[logging.Handler] = [console]
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            file = logging.FileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--log-file {log_file}: cannot be written ({exc.strerror}); "
                             "give a file in a folder you can write") from None
        file.setLevel(min(level, logging.INFO))
        file.setFormatter(fmt)
        handlers.append(file)
    for h in handlers:
        h._hpc_nst = True  # type: ignore[attr-defined]
        log.addHandler(h)
    log.setLevel(min(h.level for h in handlers))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpc-nst",
        description="Neural style transfer on audio spectrograms, at dataset scale.",
    )
    parser.add_argument("--version", action="version", version=f"hpc-nst {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more to stderr (-v: info, -vv: debug)")
    parser.add_argument("--log-file", type=Path, metavar="FILE",
                        help="also write the log (info and up) to FILE")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    _logging_options_after(sub)
    return parser


def _logging_options_after(sub: argparse._SubParsersAction) -> None:
    """-v/--log-file also after a command (``hpc-nst run ... -v``, ``hpc-nst dataset triplets
    ... -v``): set only when given there, where they replace those given before it."""
    for command in sub.choices.values():
        command.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                             help="log more to stderr (-v: info, -vv: debug)")
        command.add_argument("--log-file", type=Path, metavar="FILE",
                             default=argparse.SUPPRESS,
                             help="also write the log (info and up) to FILE")
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                _logging_options_after(action)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand: an :class:`~hpc_nst.errors.HpcNstError` (or a missing file) is
    printed on one line with exit code 2; anything else is a bug and keeps its traceback."""
    args = build_parser().parse_args(argv)
    try:
        setup_logging(args.verbose, args.log_file)
    except UsageError as exc:
        print(f"hpc-nst {args.command}: error: {exc}", file=sys.stderr)
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        return _pipe_closed()
    except (HpcNstError, FileNotFoundError) as exc:
        log.debug("%s failed", args.command, exc_info=True)
        print(f"hpc-nst {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        hint = _os_error_hint(exc)
        if hint is None:
            raise  # not the user's to fix: a bug, with its traceback
        log.debug("%s failed", args.command, exc_info=True)
        where = f"{exc.filename}: " if exc.filename else ""
        if exc.filename2:  # a rename's second path
            where = f"{exc.filename} -> {exc.filename2}: "
        print(f"hpc-nst {args.command}: error: {where}{exc.strerror or exc}; {hint}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hpc-nst {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:  # (after Ctrl-C or SIGTERM: what the store's I/O thread still had under way)
        settle_store_io()


#: errno -> what to do, for the file-system errors a user fixes (a read-only or full disk,
#: no permission, a file where a folder should be): one line, exit code 2, no traceback.
_OS_HINTS = {
    errno.EACCES: "check its permissions (or choose a place you may write to)",
    errno.EPERM: "check its permissions (or choose a place you may write to)",
    errno.EROFS: "that file system is read-only: choose a writable place",
    errno.ENOSPC: "the disk is full: free space (or choose another place) and run it again",
    errno.EDQUOT: "the disk quota is used up: free space (or choose another place) and run "
                  "it again",
    errno.ENOTDIR: "a part of that path is a file, not a folder: choose another path",
    errno.EISDIR: "that is a folder: give a file name",
    errno.EEXIST: "a file of that name is in the way of a folder: choose another path",
}


def _os_error_hint(exc: OSError) -> str | None:
    return _OS_HINTS.get(exc.errno) if exc.errno is not None else None


def _pipe_closed() -> int:
    """The reader of stdout went away (``hpc-nst status STORE | head -1``): stop quietly, as a
    command killed by SIGPIPE would (exit code 141), without a traceback or a second error
    when Python flushes stdout at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (captured): nothing is flushed at exit
        pass
    return 141  # 128 + SIGPIPE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
