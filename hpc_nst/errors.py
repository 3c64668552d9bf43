"""The one error hierarchy of hpc_nst.

Every problem with the user's input or environment is an :class:`HpcNstError`: the CLI prints
its message on one line and exits with code 2. Anything else that escapes is a bug and keeps
its traceback. The subclasses also derive from the builtin they used to be (``ValueError`` or
``RuntimeError``), so ``except ValueError`` written against older releases still catches them.
"""

from __future__ import annotations


class HpcNstError(Exception):
    """A problem the user can fix; the message names the item, the problem and what to do."""


class UsageError(HpcNstError):
    """A bad command-line argument or combination of arguments."""


class ConfigError(HpcNstError, ValueError):
    """A job preset or override is invalid; the message names the key."""


class RegistryError(ConfigError):
    """An unknown method, loss term or term parameter; the message lists the valid names."""


class ManifestError(HpcNstError, ValueError):
    """A manifest (of pairs, or of training files) cannot be used.

    Raised as ``ManifestError(message)``, or as ``ManifestError(path, problems)`` for a pair
    manifest with one or more bad rows: ``problems`` then lists each with its line number.
    """

    def __init__(self, message: object, problems: list[str] | None = None, hint: str = ""):
        self.path, self.problems = (message, list(problems)) if problems is not None \
            else (None, [])
        if problems is not None:
            shown = "\n  ".join(problems[:50])
            more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
            message = f"{message}: {len(problems)} problem(s):\n  {shown}{more}"
            message += f"\n{hint}" if hint else ""
        super().__init__(str(message))


class AudioError(HpcNstError, ValueError):
    """An audio file cannot be used; the message names the file and the reason."""


class TransferError(HpcNstError, RuntimeError):
    """A transfer cannot run (input too short, not enough memory, ...)."""


class StoreError(HpcNstError, RuntimeError):
    """The store cannot be used for this run; the message says why and what to do."""


class StoreGoneError(StoreError):
    """The store disappeared while a run was writing it (deleted, moved, unmounted)."""


class ClusterError(HpcNstError, RuntimeError):
    """The batch scheduler refuses the worker jobs (partition, account, limits, quota)."""


class CheckpointError(HpcNstError, ValueError):
    """A model checkpoint cannot be used."""


class TrainError(HpcNstError, ValueError):
    """Training cannot start or continue."""


class PackError(HpcNstError, ValueError):
    """A packed training cache cannot be written or read."""


def did_you_mean(name: str, choices: object) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to a misspelt ``name``, or ''."""
    import difflib

    names = [str(c) for c in choices]  # type: ignore[attr-defined]
    near = difflib.get_close_matches(str(name), names, n=1, cutoff=0.7)
    return f" (did you mean {near[0]!r}?)" if near else ""
