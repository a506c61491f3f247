"""The release of adk_lite (read by setup.cfg, the CLI and export headers)."""

__version__ = "0.2.0"
