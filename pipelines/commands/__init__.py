"""The ``datashare`` sub-commands, one module per group; each calls into ``pipelines``."""
