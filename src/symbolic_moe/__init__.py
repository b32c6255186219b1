"""symbolic-moe: per-question, skill-based routing over a pool of LLMs (Symbolic-MoE), and
Expert Token Routing. See README.md for the pipeline and `smoe --help` for the commands."""

__version__ = "0.1.0"
