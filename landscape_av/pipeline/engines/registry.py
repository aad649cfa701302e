"""The engines by name (`BuildConfig.engine`): the one place that knows them all."""

from __future__ import annotations

from landscape_av.pipeline.config import BuildConfig
from landscape_av.pipeline.engines.interface import Engine, EngineFactory
from landscape_av.pipeline.engines.local import LocalEngine
from landscape_av.pipeline.engines.ray import RayEngine

ENGINES: dict[str, EngineFactory] = {"local": LocalEngine, "ray": RayEngine}


def open_engine(config: BuildConfig) -> Engine:
    """The engine `config.engine` of a build."""
    return ENGINES[config.engine](config)
