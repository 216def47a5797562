"""Optimization passes and their registry."""

from .base import Pass, PassConfig, PassContext, get_pass, known_passes, register

__all__ = ["Pass", "PassConfig", "PassContext", "get_pass", "known_passes", "register"]
