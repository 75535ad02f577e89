"""forge-mcp: the LLM fine-tuning lifecycle behind MCP and A2A."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("forge-mcp")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
