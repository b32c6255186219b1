"""Results and reports.

- `results`: run methods over seeds, write results.json / predictions.jsonl, print the table.
- `provenance`: what produced a results.json (effective config, version, input file hashes).
- `load`: read and check a run's outputs for a report (errors name the file and field).
- `figures`: the report's matplotlib figures, as PNG bytes.
- `html`: one self-contained HTML file from them (`smoe report`; imports matplotlib on use).
"""

from .results import FORMAT, evaluate, print_summary, summarise, write_json_atomic, write_predictions

__all__ = ["FORMAT", "evaluate", "print_summary", "summarise", "write_json_atomic", "write_predictions"]
