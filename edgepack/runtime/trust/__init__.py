"""Verification of signed artifacts, shipped in the runtime so devices run the same checks.

``reader`` is the one trust path (``verify_and_extract``, ``verify_and_assemble``,
``verify_tree``); ``statement`` the pure checks of the signed statement and manifest;
``names`` the canonical-name rules; ``dsse`` and ``public_keys`` the signature check;
``tree_writer`` the fresh-directory writer. ``cryptography`` is imported only when a
signature is checked.
"""
