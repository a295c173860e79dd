"""Homomorphic encryption with TenSEAL (docs/homomorphic.md).

``ckks`` holds the CKKS parameter sets, contexts, serialization and the binding of a
ciphertext to its context; ``keys`` the owner-side key directory (the secret key stays
in it; only the public context travels). Scoring (``sigmoid``, ``scoring``) and the
BFV outsourcing modules build on these.

TenSEAL is a C++ extension, not MPyC: a party node and the clients may import this
package, the coordinator never does (an import-linter contract in pyproject.toml).
"""
