"""Talking to HealthOmics: the boto3 client, pacing, retries and typed results (omics.py)."""
