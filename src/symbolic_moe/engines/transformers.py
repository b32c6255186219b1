"""The `transformers` engine (SPEC 8): PyTorch models through Hugging Face transformers, white-box.

    engine = TransformersEngine(model="embedded:smollm2", options={"device": "cpu"})
    engine.generate([ChatRequest.user("2+2?")], GenerationSettings(temperature=0, max_tokens=32))

`model` is one of
- `embedded:smollm2` / `embedded:gemma3-270m`, or a path to a `.gguf` file (absolute, or relative
  to the working directory, then to `data_dir`): loaded through transformers' GGUF support, which
  dequantises the weights (to float32 by default), so the numbers differ slightly from llama.cpp's
  quantised kernels and so may the texts;
- a local model folder (config.json + safetensors), or one holding GGUF files with `gguf_file`;
- a hub id (`HuggingFaceTB/SmolLM2-135M-Instruct`), read from the local hub cache or downloaded
  by transformers as usual. Pin `revision`: the store key sees the hub id and revision only, not
  an upstream change of the weights.

Options (TransformersOptions; anything else is a configuration error):
- output-changing: `dtype` ("float32"; "bfloat16"/"float16" for GPUs, "auto" = the checkpoint's),
  `gguf_file`, `revision`, `chat_template` (Jinja source replacing the model's; "" forces the
  plain prompt), `system_prompt` (a system message before every request, merged with a
  request's own), `n_ctx` (prompt plus completion; default the model's
  `max_position_embeddings`; a longer prompt is an EngineError, never truncated).
- speed-only: `device` ("cpu"; "cuda", "cuda:1", "mps"), `batch_size` (8: sequences per forward
  pass), `n_threads` (torch's intra-op threads; process-wide, so set it on one engine only),
  `verbose` (transformers' logs and progress bars).

Generation is our own loop over the model's forward pass, not `model.generate`: requests are
sorted by prompt length and run `batch_size` at a time, left-padded, with explicit position ids
(so padding shifts nothing) and a KV cache from which finished rows are dropped. Each request
samples with its own `torch.Generator` seeded `settings.seed + request.sample`, so a sampled text
does not depend on which requests share its batch (`model.generate` draws from one global
generator). In float32 on CPU batched texts equal one-at-a-time texts, greedy and sampled (tests,
BENCHMARKS.md); in half precision on a GPU, kernels for other batch shapes may round differently.
Greedy at temperature 0; otherwise top-p on the untempered distribution, then temperature
(llama.cpp's order, as the llama_cpp engine). An end-of-turn token (EOS, or a chat
marker such as <|im_end|>/<end_of_turn> that llama.cpp also treats as end of generation) ends a
text and is not counted; a stop string cuts the text (finish "stop"); the token limit gives
"length". Prompts use the tokenizer's chat template via `apply_chat_template`; a template that
rejects the system role gets it merged into the first user turn, and a tokenizer without one gets
the llama_cpp engine's plain "User: ...\\nAssistant:" prompt (same helpers, same stop).

Structured generation: a `json_schema` masks each step's logits to the tokens that keep the text
a prefix of matching JSON (json_constraint.py: lm-format-enforcer, and why), then samples as above.

White-box (ETR): `hidden_states` gives final-norm states (the base model's last_hidden_state),
`head()` the output matrix W_V, so W_V @ h are the model's logits. transformers_whitebox.py puts
ETR's MetaLM on this backend (a `transformers:` prefix on the meta model reference selects it).
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import io
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from pydantic import Field

from ..errors import EngineError
from ..types import ChatRequest, Completion, GenerationSettings, Message
from .base import EngineOptions, TimedEngine, file_identity
from .chat_template import PLAIN_STOP, merge_system, render_plain, with_system_prompt
from .embedded import is_embedded, resolve_gguf
from .json_constraint import schema_constraint
from .torch_decoding import cache_of, pick_token, torch_module, trim_heap

# Chat end-of-turn markers llama.cpp counts as end of generation besides EOS (llama-vocab.cpp).
END_OF_TURN = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>", "<|endoftext|>", "<|end_of_text|>")


class TransformersOptions(EngineOptions):
    """The options this engine accepts; see the module docstring for which change outputs."""

    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    gguf_file: str | None = None
    revision: str | None = None
    chat_template: str | None = None
    system_prompt: str | None = None
    n_ctx: int | None = Field(None, ge=16)
    device: str = "cpu"
    batch_size: int = Field(8, ge=1, le=256)
    n_threads: int | None = Field(None, ge=1)
    verbose: bool = False


OUTPUT_OPTIONS = frozenset({"dtype", "gguf_file", "revision", "chat_template", "system_prompt", "n_ctx"})


def locate(model: str, config: TransformersOptions) -> tuple[str, str | None, dict[str, Any]]:
    """(folder or hub id, GGUF file name or None, identity of the weights) for `model`."""
    if is_embedded(model) or model.endswith(".gguf"):
        path = resolve_gguf(model, config.data_dir)
        return str(path.parent), path.name, {"file": file_identity(path)}
    folder = Path(model).expanduser()
    if not folder.is_dir() and config.data_dir and not folder.is_absolute():
        folder = Path(config.data_dir) / model
    if folder.is_dir():
        if config.gguf_file:
            files = [folder / config.gguf_file]
        else:
            weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
            files = [folder / "config.json", *weights]
        missing = [f.name for f in files if not f.is_file()]
        if missing or len(files) < 2 and not config.gguf_file:
            raise EngineError(f"model folder {folder} lacks {', '.join(missing) or 'weight files'}")
        return str(folder.resolve()), config.gguf_file, {"files": [file_identity(f) for f in files]}
    # A hub id: its revision (an output option) names the weights.
    return model, config.gguf_file, {"hub": model}


@dataclass
class _Row:
    """One request in flight: its prompt, sampler and what it has produced."""

    index: int
    prompt: list[int]
    limit: int
    generator: Any
    started: float
    tokens: list[int] = field(default_factory=list)
    text: str = ""


@dataclass
class TransformersEngine(TimedEngine):
    Options = TransformersOptions
    output_options = OUTPUT_OPTIONS
    kind: str = "transformers"
    net: Any = field(default=None, init=False, repr=False)  # the PreTrainedModel
    tokenizer: Any = field(default=None, init=False, repr=False)
    _cache_arg: str = field(default="past_key_values", init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def config(self) -> TransformersOptions:
        """The validated options (typed)."""
        assert isinstance(self.opts, TransformersOptions)
        return self.opts

    def model_identity(self) -> dict[str, Any]:
        """The weights `model` points at: GGUF or weight files (path, size, mtime), or a hub id."""
        return locate(self.model, self.config)[2]

    # --- lifecycle ---------------------------------------------------------------------------

    def _load(self) -> None:
        torch = torch_module()
        # heavy: transformers loads only when the model does
        import transformers

        if not self.config.verbose:
            transformers.utils.logging.set_verbosity_error()
            transformers.utils.logging.disable_progress_bar()
        if self.config.n_threads:
            torch.set_num_threads(self.config.n_threads)
        source, gguf_file, _ = locate(self.model, self.config)
        kwargs: dict[str, Any] = {"revision": self.config.revision}
        if gguf_file:
            kwargs["gguf_file"] = gguf_file
        dtype = self.config.dtype if self.config.dtype == "auto" else getattr(torch, self.config.dtype)
        # The GGUF conversion draws a tqdm bar of its own, which no transformers setting silences.
        quiet = contextlib.nullcontext() if self.config.verbose else contextlib.redirect_stderr(io.StringIO())
        try:
            with quiet:
                tokenizer = transformers.AutoTokenizer.from_pretrained(source, **kwargs)
                net = transformers.AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs)
            cast(Any, net).to(self.config.device).eval()  # transformers' typing of `to` rejects a device string
        except (OSError, ValueError, RuntimeError, KeyError, AssertionError) as exc:
            # AssertionError: torch's "not compiled with CUDA enabled" for a device it lacks.
            raise EngineError(f"transformers could not load '{self.model}' on {self.config.device}: {exc}") from exc
        if self.config.chat_template is not None:
            tokenizer.chat_template = self.config.chat_template
        self.net, self.tokenizer = net, tokenizer
        # transformers 5.x renames forward's `past_key_values` to `cache` (the old name goes in 5.40).
        self._cache_arg = "cache" if "cache" in inspect.signature(net.forward).parameters else "past_key_values"

    def _unload(self) -> None:
        with self._lock:
            self.net = None
            self.tokenizer = None
            self.__dict__.pop("end_ids", None)
            gc.collect()  # the model's tensors go now, not at some later collection
            trim_heap()
            torch = torch_module()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    # --- prompts -----------------------------------------------------------------------------

    @property
    def plain(self) -> bool:
        """No chat template: the plain "User:/Assistant:" prompt (base models)."""
        template = self.tokenizer.chat_template
        return not template or (isinstance(template, str) and not template.strip())

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text for `messages` (system_prompt applied), ending where the answer starts."""
        self.load()
        messages = with_system_prompt(messages, self.config.system_prompt)
        if self.plain:
            return render_plain(messages)
        try:
            return self._apply_template(messages)
        except Exception as exc:  # jinja2 errors, or the template's own raise_exception
            if not any(m["role"] == "system" for m in messages):
                raise EngineError(f"{self.model}: the chat template failed: {exc}") from exc
            try:
                return self._apply_template(merge_system(messages))
            except Exception as exc2:
                raise EngineError(f"{self.model}: the chat template failed: {exc2}") from exc2

    def _apply_template(self, messages: Sequence[Message]) -> str:
        return self.tokenizer.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=True
        )

    def request_tokens(self, request: ChatRequest) -> list[int]:
        """The token ids the model sees for `request`. A template writes its own BOS; the plain
        prompt relies on the tokenizer's special-token setting (as in the llama_cpp engine)."""
        text = self.render(request.messages)
        return list(self.tokenizer(text, add_special_tokens=self.plain)["input_ids"])

    @cached_property
    def end_ids(self) -> frozenset[int]:
        """Tokens that end a generation: EOS ids of the tokenizer and generation config, and the
        chat end-of-turn markers the vocabulary has."""
        ids = {self.tokenizer.eos_token_id}
        configured = self.net.generation_config.eos_token_id
        ids.update(configured if isinstance(configured, list) else [configured])
        vocab = self.tokenizer.get_vocab()
        ids.update(vocab[t] for t in END_OF_TURN if t in vocab)
        return frozenset(i for i in ids if i is not None)

    # --- generation --------------------------------------------------------------------------

    def _generate_each(
        self, requests: list[ChatRequest], settings: GenerationSettings
    ) -> Iterator[tuple[int, Completion]]:
        """(index in `requests`, completion) for every request, as each finishes. One model must
        not run two decodes at once (the server may call from several threads): the lock is held
        until the iterator is exhausted or closed."""
        with self._lock:
            if self.net is None:
                raise EngineError(f"{self.model}: the engine was unloaded during generation")
            torch = torch_module()
            n_ctx = self.config.n_ctx or int(getattr(self.net.config, "max_position_embeddings", 4096))
            prompts = []
            for i, request in enumerate(requests):
                tokens = self.request_tokens(request)
                if len(tokens) >= n_ctx:
                    who = f"question {request.question_id}" if request.question_id else f"request {i}"
                    raise EngineError(
                        f"{self.model}: the prompt of {who} has {len(tokens)} tokens, more than the context "
                        f"n_ctx={n_ctx} allows; raise the model's n_ctx option"
                    )
                prompts.append(tokens)
            # Similar lengths share a batch, so little of each forward pass is padding.
            order = sorted(range(len(requests)), key=lambda i: -len(prompts[i]))
            size = self.config.batch_size
            for first in range(0, len(order), size):
                rows = [
                    _Row(
                        i,
                        prompts[i],
                        min(settings.max_tokens, n_ctx - len(prompts[i])),
                        torch.Generator().manual_seed(settings.seed + requests[i].sample),
                        time.perf_counter(),
                    )
                    for i in order[first : first + size]
                ]
                yield from self._decode_batch(rows, settings)

    def _decode_batch(self, rows: list[_Row], settings: GenerationSettings) -> Iterator[tuple[int, Completion]]:
        """Prefill the left-padded prompts together, then decode one token per live row per step;
        a finished row leaves the batch and its KV cache."""
        torch = torch_module()
        device = self.net.device
        width = max(len(r.prompt) for r in rows)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.end_ids)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, row in enumerate(rows):
            ids[j, width - len(row.prompt) :] = torch.tensor(row.prompt)
            mask[j, width - len(row.prompt) :] = 1
        # Positions count real tokens only, so a padded row sees the positions it would see alone.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        mask = mask.to(device)
        out = self._forward(
            input_ids=ids.to(device), attention_mask=mask, position_ids=positions.to(device), logits_to_keep=1
        )
        cache, logits = cache_of(out), out.logits[:, -1, :]
        position = positions[:, -1:].to(device) + 1
        live = list(range(len(rows)))
        stop = tuple(settings.stop) + (PLAIN_STOP if self.plain else ())
        constraint = schema_constraint(self.tokenizer, settings.json_schema, self.model, self.end_ids)
        while True:
            rows_logits = logits.float().cpu()
            picks, keep = [], []
            for j, r in enumerate(live):
                row = rows[r]
                row_logits = constraint.mask(rows_logits[j], row.prompt + row.tokens) if constraint else rows_logits[j]
                token = pick_token(row_logits, settings.temperature, settings.top_p, row.generator)
                finish = self._advance(row, token, stop)
                if finish is None:
                    picks.append(token)
                    keep.append(j)
                else:
                    yield row.index, self._completion(row, finish)
            if not keep:
                return
            if len(keep) < len(live):
                select = torch.tensor(keep, device=device)
                cache.batch_select_indices(select)
                mask, position = mask[select], position[select]
                live = [live[j] for j in keep]
            mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=-1)
            out = self._forward(
                input_ids=torch.tensor(picks, device=device)[:, None],
                attention_mask=mask,
                position_ids=position,
                **{self._cache_arg: cache},
            )
            cache, logits, position = cache_of(out), out.logits[:, -1, :], position + 1

    def _forward(self, **inputs: Any) -> Any:
        # Inference mode per call, never across a `yield` (it is thread state the caller would inherit).
        with torch_module().inference_mode():
            return self.net(**inputs)

    def _advance(self, row: _Row, token: int, stop: tuple[str, ...]) -> str | None:
        """Record a sampled token; the finish reason when the row is done, else None."""
        if token in self.end_ids:
            return "stop"
        row.tokens.append(token)
        if stop:
            before = len(row.text)
            row.text = self._detokenize(row.tokens)
            longest = max(len(s) for s in stop)
            hits = [i for i in (row.text.find(s, max(0, before - longest + 1)) for s in stop if s) if i >= 0]
            if hits:
                row.text = row.text[: min(hits)]
                return "stop"
        return "length" if len(row.tokens) >= row.limit else None

    def _detokenize(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _completion(self, row: _Row, finish: str) -> Completion:
        text = row.text if finish == "stop" and row.text else self._detokenize(row.tokens)
        return Completion(
            text=text.lstrip() if self.plain else text,
            prompt_tokens=len(row.prompt),
            completion_tokens=len(row.tokens),
            seconds=time.perf_counter() - row.started,
            finish_reason=finish,
        )

    # --- white box (ETR) ---------------------------------------------------------------------

    def hidden_states(self, tokens: Sequence[int], all_positions: bool = False) -> np.ndarray:
        """Final-norm hidden states after `tokens`: the last position's (d,), or every
        position's (n, d) when `all_positions`; float32."""
        states = self._forward_states(tokens)
        return states if all_positions else states[-1]

    def _forward_states(self, tokens: Sequence[int]) -> np.ndarray:
        torch = torch_module()
        self.load()
        if not tokens:
            raise EngineError("hidden states of an empty token sequence")
        with self._lock, torch.inference_mode():
            ids = torch.tensor([list(tokens)], device=self.net.device)
            out = self.net.base_model(input_ids=ids)
            return out.last_hidden_state[0].float().cpu().numpy()

    def head(self) -> np.ndarray:
        """The output matrix W_V (vocab x d, float32): logits = W_V @ h. A copy, so it outlives
        an unload and never aliases the model's weights."""
        self.load()
        return self.net.get_output_embeddings().weight.detach().float().cpu().numpy().copy()

    def logits(self, tokens: Sequence[int]) -> np.ndarray:
        """The model's own next-token logits after `tokens` (vocab,), through its full forward."""
        torch = torch_module()
        self.load()
        with self._lock, torch.inference_mode():
            out = self.net(input_ids=torch.tensor([list(tokens)], device=self.net.device), logits_to_keep=1)
            return out.logits[0, -1].float().cpu().numpy()
