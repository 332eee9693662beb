"""Errors the command line turns into one clear line and exit code 2 (no traceback)."""


class HarnessError(Exception):
    """Bad input or usage: the message names the file or argument and the reason."""
