"""Releasing model versions: launch a challenger, promote it, roll back. Every step is
recorded in the model registry with who, when and why; scorers follow within their
reload interval, without a restart.

>>> import tempfile
>>> from lake import Lake
>>> reg = ModelRegistry(Lake(tempfile.mkdtemp()))
>>> for _ in range(2):
...     _ = reg.register("eta", "batch", model=None)
>>> promote(reg, "eta", 1, by="ana", reason="first")
>>> launch(reg, "eta", "canary", challenger=2, fraction=0.1, by="ana").mode
'canary'
>>> promote(reg, "eta", 2, by="ana", reason="canary held")
>>> reg.launch("eta").mode, reg.alias("eta", "champion")
('none', 2)
>>> rollback(reg, "eta", by="bo", reason="latency")
1
"""

from __future__ import annotations

import polars as pl

from training.errors import LaunchError
from training.model_registry import Launch, ModelRegistry

__all__ = ["launch", "promote", "rollback"]

CHAMPION = "champion"


def launch(
    registry: ModelRegistry,
    name: str,
    mode: str,
    *,
    challenger: int | None = None,
    fraction: float = 0.0,
    by: str = "",
    reason: str = "",
) -> Launch:
    """Start (or with ``mode="none"`` end) a shadow or canary launch of ``challenger``."""
    if mode == "shadow" and fraction:
        raise LaunchError("a shadow launch scores all traffic; --fraction is for canaries")
    return registry.set_launch(Launch(name, mode, challenger, fraction, None, by, reason))


def promote(
    registry: ModelRegistry, name: str, version: int, *, by: str = "", reason: str = ""
) -> None:
    """Make ``version`` the champion; a launch of that version ends (it is now served)."""
    registry.set_alias(name, CHAMPION, version, reason=reason or "promoted", by=by)
    current = registry.launch(name)
    if current.mode != "none" and current.challenger == version:
        launch(registry, name, "none", by=by, reason=f"v{version} promoted")


def rollback(registry: ModelRegistry, name: str, *, by: str = "", reason: str = "") -> int:
    """Point the champion back at the version it had before; end any launch.
    Returns the version now serving."""
    history = registry.alias_history(name).filter(pl.col("alias") == CHAMPION)
    versions = history["version"].to_list()
    if not versions:
        raise LaunchError(f"model {name!r} has no champion to roll back")
    current = versions[-1]
    earlier = [v for v in versions if v != current]
    if not earlier:
        raise LaunchError(
            f"model {name!r} has had no champion but v{current}: nothing to roll back to"
        )
    previous = earlier[-1]
    registry.set_alias(name, CHAMPION, previous, reason=reason or f"rollback from v{current}",
                       by=by)  # fmt: skip
    if registry.launch(name).mode != "none":
        launch(registry, name, "none", by=by, reason=f"rollback from v{current}")
    return int(previous)
