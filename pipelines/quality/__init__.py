"""Great Expectations quality gates: the input suite on extracts, the privacy suite on output.

Results and reports never hold record values: the input gate names children by program code
and local id, the output gate reports counts per rule and column.
"""

from pipelines.quality.context import QualityError
from pipelines.quality.input_suite import InputResult, InputRule, validate_input
from pipelines.quality.output_suite import OutputResult, validate_output
from pipelines.quality.report import render_text, write_report

__all__ = [
    "InputResult",
    "InputRule",
    "OutputResult",
    "QualityError",
    "render_text",
    "validate_input",
    "validate_output",
    "write_report",
]
