"""User-facing errors: every message names the problem and the fix."""
import re
from typing import Dict

from ...models.checkpoint import CheckpointError
from ...models.device import DeviceError
from ...models.errors import TrainingDivergedError


class ClaireError(Exception):
    """An error caused by the user's input or environment, with a message that says how to fix it."""


class CancelledError(ClaireError):
    """The run was cancelled by the user; nothing was written."""

    def __init__(self, message: str = "Cancelled by the user; no output was written.") -> None:
        super().__init__(message)


def rename_flags(text: str, names: Dict[str, str]) -> str:
    """An engine message with its command-line flags replaced by what another interface calls them: in one
    pass, longest key first, whole flags only (--sar is not the start of --sar-bands)."""
    if not names:
        return text
    keys = sorted(names, key=len, reverse=True)
    pattern = re.compile("(?:" + "|".join(re.escape(k) for k in keys) + r")(?![\w-])")
    return pattern.sub(lambda m: names[m.group(0)], text)


#: Exceptions whose message is meant for the user (problem and fix): shown as they are, never as a
#: traceback. Catch these by type; nothing else is a user error.
USER_ERRORS = (ClaireError, CheckpointError, DeviceError, TrainingDivergedError)
