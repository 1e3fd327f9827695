"""The git side of repository sessions: check, clone (through a cache), inspect, delete.

GitPython is imported only inside the functions that run git, so importing
this package (as ``mux --help`` and ``--dry-run`` do) stays cheap.
"""

from mux.workspace.repo.cloning import ClonedRepo, cache_path, clone, clone_commands
from mux.workspace.repo.errors import RepoError
from mux.workspace.repo.urls import local_path, redact_url, validate_branch, validate_repo_url

__all__ = [
    "ClonedRepo",
    "RepoError",
    "cache_path",
    "clone",
    "clone_commands",
    "local_path",
    "redact_url",
    "validate_branch",
    "validate_repo_url",
]
