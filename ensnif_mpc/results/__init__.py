"""Results: each party's sealed shares of a job's outputs, their signed delivery, and how the
analyst combines them.
"""
