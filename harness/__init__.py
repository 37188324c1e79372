"""slogate harness: runs YAML scenarios against an LLM gateway stack and gates on SLOs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("slogate")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
