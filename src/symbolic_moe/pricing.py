"""What a call costs (issue 18): a model's stated price, the cost of one call, and the sums a run
reports (per method, model, step and question). Pure arithmetic; nothing here generates.

A price is either per token (`input`, `output`: USD per 1M prompt / completion tokens) or per
call (`per_call`: USD). A cost the backend recorded for the call itself (a replay record's
`cost`) wins over the stated price. A model without a price is *unpriced*: its calls cost
`None`, and any sum that includes one is `None` too (a lower bound would read as a total).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, model_validator

from .types import Completion

# Strict: a quoted "0.5" or a boolean in a price table is a typo, not a number to coerce.
USD = Annotated[StrictFloat, Field(ge=0, allow_inf_nan=False)]
TOKENS_PER_UNIT = 1_000_000  # per-token prices are quoted per 1M tokens


class Price(BaseModel):
    """A model's price: `input` and `output` (USD per 1M prompt / completion tokens), or
    `per_call` (USD); `source` says where the figures come from (a price list, dated)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: USD | None = None
    output: USD | None = None
    per_call: USD | None = None
    source: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Price:
        per_token = (self.input is not None, self.output is not None)
        if self.per_call is not None and any(per_token):
            raise ValueError("give either input and output (USD per 1M tokens) or per_call (USD), not both")
        if self.per_call is None and not all(per_token):
            raise ValueError("give both input and output (USD per 1M tokens), or per_call (USD)")
        return self


def call_cost(
    price: Price | None, prompt_tokens: int, completion_tokens: int, recorded: float | None = None
) -> float | None:
    """USD of one call: the recorded cost when there is one, else from the price; None when
    the model is unpriced."""
    if recorded is not None:
        return recorded
    if price is None:
        return None
    if price.per_call is not None:
        return price.per_call
    assert price.input is not None and price.output is not None  # Price's validator
    return (prompt_tokens * price.input + completion_tokens * price.output) / TOKENS_PER_UNIT


def priced(price: Price | None, completion: Completion) -> Completion:
    """`completion` with its `cost_usd`: the one its engine recorded, else `price` on its tokens;
    a job left without an answer (finish_reason "error") bought nothing: 0, or None if unpriced."""
    if completion.finish_reason == "error" and completion.text is None:
        cost = None if price is None else 0.0
    else:
        cost = call_cost(price, completion.prompt_tokens, completion.completion_tokens, completion.cost_usd)
    return completion.model_copy(update={"cost_usd": cost})


@dataclass(frozen=True)
class Charge:
    """One call a caller asked for (generated now or served from the store): which step asked,
    which model answered, for which question, its tokens and its cost (None: unpriced)."""

    step: str
    model: str
    question_id: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None


@dataclass
class Spend:
    """The sum of some charges. `cost_usd` is None as soon as one of them is unpriced."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    priced_usd: float = 0.0
    unpriced_models: set[str] = field(default_factory=set)

    def add(self, charge: Charge) -> None:
        self.calls += 1
        self.prompt_tokens += charge.prompt_tokens
        self.completion_tokens += charge.completion_tokens
        if charge.cost_usd is None:
            self.unpriced_models.add(charge.model)
        else:
            self.priced_usd += charge.cost_usd

    @property
    def cost_usd(self) -> float | None:
        return None if self.unpriced_models else self.priced_usd

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": self.cost_usd,
            "unpriced_models": sorted(self.unpriced_models),
        }

    @classmethod
    def of(cls, charges: Iterable[Charge]) -> Spend:
        spend = cls()
        for charge in charges:
            spend.add(charge)
        return spend


def spend_by(charges: Iterable[Charge], key: Callable[[Charge], Any]) -> dict[Any, Spend]:
    """Charges summed per `key` (e.g. model, step or question), in first-seen order."""
    groups: dict[Any, Spend] = {}
    for charge in charges:
        groups.setdefault(key(charge), Spend()).add(charge)
    return groups


def usd_text(cost: float | None) -> str:
    """A cost for tables: USD to 6 decimals (a call can cost a few millionths), or "unpriced"."""
    return "unpriced" if cost is None else f"{cost:.6f}"
