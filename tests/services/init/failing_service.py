"""A service whose build fails, for capos-init's error path."""

from typing import Any


async def build(ctx: Any) -> dict[str, Any]:
    raise RuntimeError(f"{ctx.name}: data disk not mounted")
