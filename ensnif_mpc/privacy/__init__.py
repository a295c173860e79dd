"""Differential privacy: calibration of the noise added inside MPC, release plans, the discrete
Laplace parameters.
"""
