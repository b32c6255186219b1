"""Entry points, apart from the core: the `smoe` CLI (`cli`, `etr_cli`, `cli_errors`), the
OpenAI-compatible server (`server`), comparisons (`compare`) and reports (`report`: results.json,
predictions.jsonl and the HTML report). Nothing in the core imports from here."""
