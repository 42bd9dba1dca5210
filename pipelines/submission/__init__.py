"""One submission, step by step, usable without Airflow.

``plan`` (which programs, no PII) -> ``prepare`` per program (extract, validate input, decide,
transform, map, validate output, stage encrypted) -> ``deliver`` per program (send, then record
exactly what the destination accepted) -> ``finish`` (the run summary). Each step takes and
returns small PII-free dicts so Airflow can hand them between tasks.
"""
