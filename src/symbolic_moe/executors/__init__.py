"""Executors beyond the scheduler's LocalExecutor (threads): Ray (`executors.ray`, imported lazily)."""

from __future__ import annotations

from typing import Any


def make_executor(config: Any, pool: Any) -> Any | None:
    """The executor `scheduler.executor` names; None: the scheduler's own LocalExecutor."""
    cfg = config.scheduler
    if cfg.executor != "ray":
        return None
    # heavy: ray loads only for executor = "ray"
    from .ray import RayExecutor

    return RayExecutor(
        address=cfg.ray_address,
        max_retries=cfg.max_retries,
        chunk_size=cfg.chunk_size,
        cluster_resources=cfg.ray_resources,
        num_cpus=cfg.ray_num_cpus,
    )
