"""Errors raised while a stack starts, runs or stops."""


class StackError(RuntimeError):
    """A stack service failed to start, become ready or stop."""


class UnsupportedFault(StackError):
    """A scenario's fault that the stack backend cannot perform; raised before the load starts."""
