"""Signing and verification: keys (Ed25519 files, AWS KMS), DSSE envelopes, in-toto
attestations with SLSA provenance, and offline verification of artifacts.

Modules: ``keys``, ``dsse``, ``attestation``, ``verify``. Nothing is imported here, so
``import edgepack.signing.keys`` stays cheap.
"""
