"""MPC programs (MPyC), one module per protocol family, and the registry describing them.

``protocols.registry`` is plain Python (the coordinator and nodes read it);
the program modules import MPyC and are loaded only inside a job's worker process.
"""
