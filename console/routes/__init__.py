"""The console's routes, one module per page family; each calls pipelines/privacy functions."""
