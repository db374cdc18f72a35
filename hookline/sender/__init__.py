"""The sending side: fan-out happens in the store; this package sends and retries."""

from hookline.sender.engine import Engine, EngineObserver

__all__ = ["Engine", "EngineObserver"]
