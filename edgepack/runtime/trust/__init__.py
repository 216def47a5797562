"""Verification of signed artifacts, shipped in the runtime so devices run the same checks.

``cryptography`` is imported only when a signature is checked.
"""
