"""Load child-record exports of commercial tools (Teaching Strategies GOLD, CIRCLE, ...) into
the canonical model through declared column mappings (``config/mappings/<tool>.yaml``).

Adding a tool is a new mapping file, not new code. Bad rows are quarantined whole with the
rule they broke; messages name file, line, field and rule, never a value.
"""

from pipelines.imports.errors import (
    ImportsError,
    MappingError,
    RowError,
    Rule,
    SourceError,
    StoreError,
)
from pipelines.imports.importer import ImportReport, import_file
from pipelines.imports.mapping import Mapping, find_mapping, load_mapping, mappings_dir

__all__ = [
    "ImportReport",
    "ImportsError",
    "Mapping",
    "MappingError",
    "RowError",
    "Rule",
    "SourceError",
    "StoreError",
    "find_mapping",
    "import_file",
    "load_mapping",
    "mappings_dir",
]
