"""Airflow's import error for the destination files that no DAG can be built from.

``datashare_submissions.py`` builds the DAGs of the healthy files in ``config/destinations/``
and leaves the broken ones out. This file raises
:class:`~pipelines.destinations.schedule.BrokenDestinationFiles` when any file is broken, so
that Airflow's import errors (the UI's banner, ``airflow dags list-import-errors``) show each
broken file with its line and problem while every other destination's DAG imports and runs.
With no broken file it declares no DAG and raises nothing.

Why a file of its own: Airflow records import errors per DAG file (an importer reports only
the file it parses), so the error cannot sit in the file that builds the healthy DAGs without
taking them down with it.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.destinations.schedule import scan_destinations

CONFIG_DIR = Path(os.environ.get("DATASHARE_CONFIG_DIR", Path(__file__).parent.parent / "config"))

scan_destinations(CONFIG_DIR / "destinations").raise_if_broken()
