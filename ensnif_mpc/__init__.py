"""Ensnif shared core: config, errors, PKI, job specs, client SDK and CLI.

Nothing here imports MPyC: importing MPyC parses ``sys.argv`` and builds a global
runtime, so only ``protocols/`` (inside a job's worker process) may do that.
"""

__version__ = "0.1.0"
