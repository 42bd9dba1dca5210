"""The data managers' console: an Airflow 3 plugin (a FastAPI app mounted in the api-server at
``/datashare`` and an entry in Airflow's menu) over the report and participation functions the
CLI uses. It holds no rule of its own; only ``datashare audit verify`` imports a module of it
(``jobs``: the one verify slot, shared with the ledger page).

Modules: ``plugin`` (what Airflow loads), ``app`` (the FastAPI app), ``auth`` (Airflow login,
roles, CSRF), ``jobs`` and ``owners`` (verify jobs and the processes that own them), ``pages``
(HTML, CSV and JSON rendering), ``charts`` (inline SVG) and one module of routes per page
family under ``routes``.
"""
