"""A `mux doctor` check's result: what was checked, whether it holds, and the fix.

A leaf, so that the checks of every layer (the engine's podman set-up, doctor's own)
return the same value without importing doctor.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
