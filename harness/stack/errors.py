"""Errors raised while a stack starts, runs or stops."""


class StackError(RuntimeError):
    """A stack service failed to start, become ready or stop."""
