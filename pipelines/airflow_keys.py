"""Pseudonymization keys from Airflow Variables (and so from any Airflow secrets backend).

A recipient's key is the Variable named like its environment variable (``DATASHARE_KEY_VT_AOE``),
holding ``keyid:base64secret``. Airflow resolves Variables through its secrets backends first
(HashiCorp Vault, AWS Secrets Manager, ``AIRFLOW_VAR_*`` environment variables, ...), then its
metadata database. Airflow is imported only when a key is asked for.
"""

from __future__ import annotations

from privacy.errors import MissingKeyError
from privacy.keys import RecipientKey, key_name, parse_key


class VariableKeyProvider:
    """Keys from Airflow Variables; a missing Variable fails closed."""

    def key(self, recipient_code: str) -> RecipientKey:
        """The recipient's key, or ``MissingKeyError`` naming the Variable."""
        from airflow.sdk import Variable

        name = key_name(recipient_code)
        text = Variable.get(name, default=None)
        if text is None:
            raise MissingKeyError(recipient_code, [f"Airflow Variable {name}"])
        return parse_key(text, source=f"Airflow Variable {name}")

    def __repr__(self) -> str:
        return "VariableKeyProvider()"
