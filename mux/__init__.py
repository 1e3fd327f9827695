"""mux: run AI coding-agent sessions in Docker containers."""

__version__ = "0.1.0"
