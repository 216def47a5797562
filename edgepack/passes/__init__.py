"""Optimization passes and their registry."""

from .base import Pass, PassConfig, PassContext, get_pass, known_passes, register, unregister

__all__ = ["Pass", "PassConfig", "PassContext", "get_pass", "known_passes", "register", "unregister"]
