"""Data owners' data: sources (CSV, Parquet, SQL) with push-down pre-aggregation, and dataset
schemas.
"""
