"""White-box meta LLM backends for ETR, measured on MMLU-Expert prompts (SmolLM2-135M-Instruct):
llama-cpp-python (embeddings, pooling NONE; head dequantised from the GGUF) against transformers
loading the same GGUF. Speed of last hidden states per prompt; agreement of head @ hidden with
llama.cpp's own logits (argmax match and max |difference|) over every position.

    .venv/bin/python benchmarks/bench_etr_whitebox.py [--n 100] [--transformers-n 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from symbolic_moe.config import default_data_dir
from symbolic_moe.etr.data import query_messages, read_questions
from symbolic_moe.etr.whitebox import MetaLM


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--transformers-n", type=int, default=30)
    p.add_argument("--threads", type=int, default=2, help="threads for both backends")
    a = p.parse_args()
    import llama_cpp

    questions = read_questions(default_data_dir() / "mmlu_expert" / "test.jsonl")[:: max(1, 1118 // a.n)][: a.n]
    lm = MetaLM(n_threads=a.threads)
    texts = [lm.render(query_messages(q)) for q in questions]
    token_lists = [lm.tokenize(t) for t in texts]
    start = time.perf_counter()
    for tokens in token_lists:
        lm._tokens = []  # no prefix reuse: measure whole prompts
        lm.hidden(tokens)
    llama_seconds = (time.perf_counter() - start) / len(token_lists)
    argmax_agree, max_diff, positions = 0, 0.0, 0
    for tokens in token_lists[:20]:
        states = lm.hidden(tokens, all_positions=True)
        own = np.stack(
            [
                np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(lm.backend.llm._ctx.ctx, i), shape=(len(lm.head),))
                for i in range(len(tokens))
            ]
        )
        mine = lm.word_logits(states)
        argmax_agree += int((own.argmax(1) == mine.argmax(1)).sum())
        max_diff = max(max_diff, float(np.abs(own - mine).max()))
        positions += len(tokens)
    result = {
        "threads": a.threads,
        "prompts": len(token_lists),
        "mean_prompt_tokens": float(np.mean([len(t) for t in token_lists])),
        "llama_cpp": {
            "seconds_per_prompt": llama_seconds,
            "argmax_agreement": argmax_agree / positions,
            "max_abs_logit_difference": max_diff,
            "positions_compared": positions,
        },
    }
    if a.transformers_n:
        import torch
        from transformers import AutoModelForCausalLM

        start = time.perf_counter()
        try:
            model = AutoModelForCausalLM.from_pretrained(str(lm.path.parent), gguf_file=lm.path.name)
        except (ImportError, ValueError) as exc:  # e.g. transformers wants `accelerate` for GGUF
            result["transformers"] = {"error": str(exc)}
            a.transformers_n = 0
        load = time.perf_counter() - start
    if a.transformers_n:
        torch.set_num_threads(a.threads)
        start = time.perf_counter()
        picks = []
        with torch.no_grad():
            for tokens in token_lists[: a.transformers_n]:
                out = model(torch.tensor([tokens]), output_hidden_states=True)
                picks.append(int(out.logits[0, -1].argmax()))  # hidden_states[-1] is the final-norm state
        seconds = (time.perf_counter() - start) / a.transformers_n
        agree = sum(int(lm.word_logits(lm.hidden(t)).argmax()) == k for t, k in zip(token_lists, picks, strict=False))
        result["transformers"] = {
            "load_seconds": load,
            "seconds_per_prompt": seconds,
            "last_position_argmax_agreement_with_llama_cpp": agree / len(picks),
        }
    out = Path(__file__).parent / "results" / "etr_whitebox.json"
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
