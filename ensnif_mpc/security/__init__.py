"""Identities and secrecy: the consortium PKI, mutual TLS, revocation, per-job MPC certificates,
sealing.
"""
