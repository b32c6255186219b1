"""JSON-schema constrained decoding for engines that sample in Python (the transformers engine).

lm-format-enforcer (a pure-Python library, one of vLLM's guided-decoding backends) walks the
schema character by character and tells, for the tokens generated so far, which next tokens keep
the text a valid prefix of a matching JSON document; every other logit is set to -inf before
sampling. It was chosen over xgrammar (faster, C++) because xgrammar's wheel pulls in triton, a
GPU compiler of hundreds of MB that a CPU install never uses, and over outlines because its
transformers path wraps `model.generate`, which this engine does not use (own decoding loop).

String `pattern`s are dropped (`without_patterns`): inside a pattern lm-format-enforcer walks
its whole vocabulary tree character by character, 0.5 s per token for SmolLM2 against 12 ms
without (measured on the keyword schema). Its fast path for free strings does not hold
`maxLength` either (a 23-character keyword passed a limit of 20): structure, types, item counts
and required keys hold, string lengths are the caller's to check (the keyword parser drops
over-long keywords).

The tokenizer's prefix tree is built once per tokenizer (`tokenizer_index`, a few seconds for a
50k vocabulary, kept while the tokenizer lives); each generate call gets a fresh
`SchemaConstraint` (its cache of parser states grows with the prefixes it has seen).
"""

from __future__ import annotations

import json
import weakref
from typing import Any

from ..errors import EngineError

_INDEXES: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()  # tokenizer -> its index


def schema_constraint(tokenizer: Any, json_schema: str | None, model: str, end_ids: frozenset[int]) -> Any:
    """The mask for a generate call with `json_schema` (a `SchemaConstraint`), None for free text."""
    if json_schema is None:
        return None
    if tokenizer not in _INDEXES:
        _INDEXES[tokenizer] = tokenizer_index(tokenizer)
    return SchemaConstraint(_INDEXES[tokenizer], json_schema, model, end_ids)


def tokenizer_index(tokenizer: Any) -> Any:
    """lm-format-enforcer's per-tokenizer data: every regular token's text as it reads after
    another token (so a leading space shows) and whether it starts a word. Built here rather than
    by the library's transformers integration, which imports a module transformers 5 removed."""
    # imported only when a request carries a schema (it loads torch)
    from lmformatenforcer.tokenenforcer import TokenEnforcerTokenizerData

    size = len(tokenizer)
    special = set(tokenizer.all_special_ids)
    ids = [i for i in range(size) if i not in special]
    zero = tokenizer.encode("0", add_special_tokens=False)[-1]
    after_zero = tokenizer.batch_decode([[zero, i] for i in ids])
    alone = tokenizer.batch_decode([[i] for i in ids])
    regular = [(i, text[1:], len(text) - 1 > len(own)) for i, text, own in zip(ids, after_zero, alone, strict=True)]

    def decode(tokens: list[int]) -> str:
        return tokenizer.decode(tokens).rstrip("\ufffd")  # a cut multi-byte character is not text yet

    return TokenEnforcerTokenizerData(regular, decode, tokenizer.eos_token_id, False, size)


def without_patterns(schema: Any) -> Any:
    """The schema with every string `pattern` removed (see the module docstring)."""
    if isinstance(schema, dict):
        return {k: without_patterns(v) for k, v in schema.items() if not (k == "pattern" and isinstance(v, str))}
    if isinstance(schema, list):
        return [without_patterns(v) for v in schema]
    return schema


class SchemaConstraint:
    """Masks a row's logits to the tokens that keep its text a prefix of JSON matching a schema."""

    def __init__(self, index: Any, json_schema: str, model: str, end_ids: frozenset[int]) -> None:
        from lmformatenforcer import JsonSchemaParser, TokenEnforcer  # with the index above

        try:
            self.enforcer = TokenEnforcer(index, JsonSchemaParser(without_patterns(json.loads(json_schema))))
        except Exception as exc:  # the parser raises assorted errors for schemas it cannot follow
            raise EngineError(f"{model}: cannot constrain decoding to the JSON schema: {exc!r}") from None
        self.end_ids = sorted(end_ids)

    def mask(self, logits: Any, sequence: list[int]) -> Any:
        """`logits` (1-D torch tensor) with every token the schema does not allow after
        `sequence` (prompt and generated tokens) set to -inf. Where the enforcer allows nothing
        (it cannot continue), only the end-of-generation tokens stay."""
        import torch  # the transformers engine's own backend

        allowed = list(self.enforcer.get_allowed_tokens(sequence).allowed_tokens) or self.end_ids
        masked = torch.full_like(logits, float("-inf"))
        index = torch.tensor([t for t in allowed if t < logits.shape[-1]], dtype=torch.long)
        masked[index] = logits[index]
        return masked
