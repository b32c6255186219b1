"""Expert Token Routing (ETR seed, SPEC 7): experts as extra rows of a frozen meta LLM's head.

whitebox (hidden states, head, response log-probs) -> query_sets (loss- or correctness-based)
-> train (W_E only) -> plugins (one file per expert, append) -> extend (plug-in experts trained
against the frozen old ones) -> routing (switching decode, router-only) -> replay_pool (a pool
router fitted on validation; select: its cross-validation). The MMLU-Expert paper experiment is
app/etr_mmlu_expert.py. `api` is the surface the CLI calls; the `etr` / `etr_vote` methods live in
methods/etr.py (etr/ never imports methods/).
"""

from .api import labelled_query_sets, replay_query_sets, route_questions, train_plugins
from .plugins import ExpertHead, ExpertToken, append_tokens, load_head, save_head
from .routing import EngineExpert, ETRCompletion, PromptExpert, etr_generate, route_states
from .train import TrainConfig, train_expert_tokens
from .whitebox import HiddenCache, MetaLM

__all__ = [
    "ETRCompletion",
    "EngineExpert",
    "ExpertHead",
    "ExpertToken",
    "HiddenCache",
    "MetaLM",
    "PromptExpert",
    "TrainConfig",
    "append_tokens",
    "etr_generate",
    "labelled_query_sets",
    "load_head",
    "replay_query_sets",
    "route_questions",
    "route_states",
    "save_head",
    "train_expert_tokens",
    "train_plugins",
]
