"""The LLM unit: llama.cpp (llama-cpp-python) over any GGUF, chat template taken from the GGUF.

Written with the public unit SDK, like any user unit. Decoding runs token by token so that
`pause`, a wake word or an exit stop it at once, and bytes are decoded incrementally so a
streamed delta never splits a UTF-8 character.
"""

from __future__ import annotations

import codecs
import os
from typing import Any, Iterator, Literal

from pydantic import Field

from emberflow.unit import IO, Code, Unit, UnitError, UnitParams

# The tiny default model rambles without a system prompt (see shared/models.md).
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant. Answer in one or two short sentences."
CONTEXT_RESET_REPLY = "Context has been reset."


class LLMParams(UnitParams):
    response_format: Literal["llm.utf-8", "llm.utf-8.stream"] = "llm.utf-8.stream"
    prompt: str = Field(DEFAULT_SYSTEM_PROMPT, description="System prompt. Empty uses the default.")
    prompt_suffix: str = Field("", description="Appended to the system prompt; tiny models set a style hint "
                                               "here in their descriptor's mode_param.")
    max_token_len: int = Field(256, ge=1, le=8192, description="Maximum new tokens per answer.")
    temperature: float = Field(0.2, ge=0.0, le=2.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    top_k: int = Field(40, ge=0, le=1000)
    repetition_penalty: float = Field(1.0, ge=0.5, le=2.0)
    n_ctx: int = Field(2048, ge=128, le=32768, description="Context window in tokens.")
    n_threads: int = Field(0, ge=0, le=256, description="CPU threads; 0 = all cores.")
    seed: int = Field(-1, description="Sampling seed; -1 = random.")
    context: bool = Field(False, description="Keep multi-turn history; the input text 'reset' clears it.")
    precompute_len: int = Field(0, ge=0, description="StackFlow ctx models: > 0 also keeps history.")

    @property
    def keeps_context(self) -> bool:
        return self.context or self.precompute_len > 0


class LLMUnit(Unit):
    """Chat with a GGUF language model (llama.cpp)."""

    kind = "llm"
    max_tasks = 2
    Params = LLMParams
    inputs = {"text": IO.TEXT}
    outputs = {"text": IO.TEXT_STREAM}

    model_path: Any = None

    def setup(self, params: LLMParams) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        if self.model_path is None:
            raise UnitError(Code.MODEL_LOADING, detail="model weights not found")
        self.params = params
        self.llm = Llama(
            model_path=str(self.model_path),
            n_ctx=params.n_ctx,
            n_threads=params.n_threads or os.cpu_count() or 1,
            seed=params.seed if params.seed >= 0 else 0xFFFFFFFF,
            verbose=False,
        )
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise UnitError(Code.MODEL_LOADING, detail="the GGUF has no chat template (base model?)")
        vocab = self.llm._model
        self.formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=vocab.token_get_text(self.llm.token_eos()),
            bos_token=vocab.token_get_text(self.llm.token_bos()),
        )
        self.vocab = vocab.vocab
        self.history: list[dict[str, str]] = []

    def teardown(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            llm.close()

    def infer(self, text: str) -> Iterator[str]:
        p = self.params
        if p.keeps_context and text.strip().lower() == "reset":
            self.history.clear()
            yield CONTEXT_RESET_REPLY
            return
        from llama_cpp import llama_vocab_is_eog

        turn = {"role": "user", "content": text}
        tokens, stop = self._prompt_tokens(turn)
        answer: list[str] = []
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        generated = 0
        for token in self.llm.generate(tokens, top_k=p.top_k, top_p=p.top_p, temp=p.temperature,
                                       repeat_penalty=p.repetition_penalty, reset=True):
            if llama_vocab_is_eog(self.vocab, token) or generated >= p.max_token_len:
                break
            generated += 1
            piece = decoder.decode(self.llm.detokenize([token], special=False))
            if not piece:
                continue  # an incomplete UTF-8 sequence: wait for the next token
            answer.append(piece)
            if stop and any(s in "".join(answer[-4:]) for s in stop):
                break
            yield piece
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail
        if p.keeps_context:
            self.history += [turn, {"role": "assistant", "content": "".join(answer)}]

    def _prompt_tokens(self, turn: dict[str, str]) -> tuple[list[int], list[str]]:
        p = self.params
        system = {"role": "system", "content": (p.prompt or DEFAULT_SYSTEM_PROMPT) + p.prompt_suffix}
        history = list(self.history)
        while True:
            formatted = self.formatter(messages=[system, *history, turn])
            tokens = self.llm.tokenize(formatted.prompt.encode("utf-8"), add_bos=False, special=True)
            if len(tokens) + p.max_token_len <= p.n_ctx or not history:
                break
            history = history[2:]  # forget the oldest exchange to fit the window
        if len(tokens) >= p.n_ctx:
            raise UnitError(Code.MODEL_RUN, detail=f"prompt is {len(tokens)} tokens; n_ctx is {p.n_ctx}")
        stop = formatted.stop if isinstance(formatted.stop, list) else ([formatted.stop] if formatted.stop else [])
        return tokens, [s for s in stop if s]
