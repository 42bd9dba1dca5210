"""The data managers' console: an Airflow 3 plugin (a FastAPI app mounted in the api-server at
``/datashare`` and an entry in Airflow's menu) over the report and participation functions the
CLI uses. It holds no rule of its own, and nothing imports it: the one verify slot the ledger
page shares with ``datashare audit verify`` is ``pipelines.verify_jobs``.

Modules: ``plugin`` (what Airflow loads), ``app`` (the FastAPI app), ``auth`` (Airflow login,
roles, CSRF), ``pages``
(HTML, CSV and JSON rendering), ``charts`` (inline SVG) and one module of routes per page
family under ``routes``.
"""
