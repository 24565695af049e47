"""The LLM unit: llama.cpp (llama-cpp-python) over any GGUF, chat template taken from the GGUF.

Written with the public unit SDK, like any user unit. Decoding runs token by token so that
`pause`, a wake word or an exit stop it at once, and bytes are decoded incrementally so a
streamed delta never splits a UTF-8 character.
"""

from __future__ import annotations

import codecs
import collections
import os
import time
from collections.abc import Iterator
from typing import Any, Literal, cast

# llama.cpp's OpenMP team spins at every barrier, between two tokens too (GOMP's active wait).
# Left as it is: on an idle 2-core machine sleeping threads decode a third slower (75 -> 50 tok/s
# with 2 threads), while on a loaded one spinning collapses decoding (2 vs 13 tok/s); see
# bench/llm_wait_policy.py. Operators of a busy box can set OMP_WAIT_POLICY or GOMP_SPINCOUNT
# in the environment of `emberflow up`: llama.cpp's libraries load in setup, after it is read.
from pydantic import Field

from emberflow.unit import IO, Code, Unit, UnitError, UnitParams
from emberflow.voice.cpu import renice_process

# The tiny default model rambles without a system prompt (see shared/models.md).
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant. Answer in one or two short sentences."
CONTEXT_RESET_REPLY = "Context has been reset."


class LLMParams(UnitParams):
    response_format: Literal["llm.utf-8", "llm.utf-8.stream"] = "llm.utf-8.stream"
    prompt: str = Field(DEFAULT_SYSTEM_PROMPT, description="System prompt. Empty uses the default.")
    prompt_suffix: str = Field(
        "",
        description="Appended to the system prompt; tiny models set a style hint "
        "here in their descriptor's mode_param.",
    )
    max_token_len: int = Field(256, ge=1, le=8192, description="Maximum new tokens per answer.")
    temperature: float = Field(0.2, ge=0.0, le=2.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    top_k: int = Field(40, ge=0, le=1000)
    repetition_penalty: float = Field(1.0, ge=0.5, le=2.0)
    n_ctx: int = Field(2048, ge=128, le=32768, description="Context window in tokens.")
    n_threads: int = Field(0, ge=0, le=256, description="CPU threads; 0 = all cores.")
    stream_interval_ms: float = Field(
        25.0,
        ge=0,
        le=1000,
        description="Stream: pieces decoded within this long of the last message sent go out "
        "together (the first one at once); 0 = one message per piece.",
    )
    nice: int = Field(
        0,
        ge=0,
        le=19,
        description="Nice value (at least) of this unit process's threads, "
        "e.g. so speech synthesis wins the cores while it talks.",
    )
    seed: int = Field(-1, description="Sampling seed; -1 = random.")
    context: bool = Field(False, description="Keep multi-turn history; the input text 'reset' clears it.")
    precompute_len: int = Field(0, ge=0, description="StackFlow ctx models: > 0 also keeps history.")

    @property
    def keeps_context(self) -> bool:
        return self.context or self.precompute_len > 0


class LLMUnit(Unit[LLMParams]):
    """Chat with a GGUF language model (llama.cpp)."""

    kind = "llm"
    max_tasks = 2
    Params = LLMParams
    # JSON first: the host then passes dicts through, so a chat request (object
    # `llm.chat_completion`, data {"messages": [...], ...}) reaches infer; plain text still works.
    inputs = {"chat": IO.JSON, "text": IO.TEXT}
    outputs = {"text": IO.TEXT_STREAM}

    model_path: Any = None

    def setup(self, params: LLMParams) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        if self.model_path is None:
            raise UnitError(Code.MODEL_LOADING, detail="model weights not found")
        self.params = params
        self.nice = renice_process(params.nice)  # before llama.cpp starts its threads: they inherit it
        self.generated: collections.deque[int] = collections.deque(maxlen=8)  # tokens of recent answers
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
        # Warm up: the first decode pays one-off costs; also caches the system-prompt prefix.
        for _ in zip(range(1), self.infer("Hi")):
            pass

    def teardown(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            llm.close()

    def infer(self, data: str | bytes | dict) -> Iterator[str]:
        if isinstance(data, dict):
            return self._chat_completion(ChatRequest.from_data(data))
        if isinstance(data, (bytes, bytearray)):
            try:
                data = bytes(data).decode("utf-8")
            except UnicodeDecodeError:
                raise UnitError(Code.JSON_FORMAT, "json format error.", detail="text is not UTF-8") from None
        if not isinstance(data, str):
            raise UnitError(
                Code.JSON_FORMAT,
                "json format error.",
                detail=f"llm expects text or a chat request object, got {type(data).__name__}",
            )
        return self._text_turn(data)

    def _text_turn(self, text: str) -> Iterator[str]:
        p = self.params
        if p.keeps_context and text.strip().lower() == "reset":
            self.history.clear()
            yield CONTEXT_RESET_REPLY
            return
        turn = {"role": "user", "content": text}
        tokens, stop = self._prompt_tokens(turn)
        answer: list[str] = []
        yield from self._decode(
            tokens, stop, answer, max_tokens=p.max_token_len, temperature=p.temperature, top_p=p.top_p
        )
        if p.keeps_context:
            self.history += [turn, {"role": "assistant", "content": "".join(answer)}]

    def _chat_completion(self, req: ChatRequest) -> Iterator[str]:
        """One OpenAI-style chat completion: the whole conversation comes with the request (no
        task history is used or kept). Ends by emitting `llm.usage` with token counts and the
        finish reason, so HTTP gateways can fill `usage` and `finish_reason`."""
        p = self.params
        messages = req.messages
        if not any(m["role"] == "system" for m in messages):
            messages = [{"role": "system", "content": (p.prompt or DEFAULT_SYSTEM_PROMPT) + p.prompt_suffix}, *messages]
        formatted = self.formatter(messages=cast(Any, messages))  # llama_cpp types each role's dict
        tokens = self.llm.tokenize(formatted.prompt.encode("utf-8"), add_bos=False, special=True)
        max_tokens = req.max_tokens or p.max_token_len
        if len(tokens) + 1 > p.n_ctx:
            raise UnitError(Code.MODEL_RUN, detail=f"prompt is {len(tokens)} tokens; n_ctx is {p.n_ctx}")
        max_tokens = min(max_tokens, p.n_ctx - len(tokens))
        stop = formatted.stop if isinstance(formatted.stop, list) else ([formatted.stop] if formatted.stop else [])
        stop = [s for s in [*stop, *req.stop] if s]
        if req.seed is not None:
            self.llm.set_seed(req.seed)
        answer: list[str] = []
        counts = {"generated": 0, "length": False}
        yield from self._decode(
            tokens,
            stop,
            answer,
            max_tokens=max_tokens,
            temperature=p.temperature if req.temperature is None else req.temperature,
            top_p=p.top_p if req.top_p is None else req.top_p,
            counts=counts,
        )
        self.context.emit(
            "llm.usage",
            {
                "prompt_tokens": len(tokens),
                "completion_tokens": counts["generated"],
                "finish_reason": "length" if counts["length"] else "stop",
                "finish": False,  # not the end of the answer: the host's final chunk follows
            },
        )

    def _decode(
        self,
        tokens: list[int],
        stop: list[str],
        answer: list[str],
        *,
        max_tokens: int,
        temperature: float,
        top_p: float,
        counts: dict | None = None,
    ) -> Iterator[str]:
        from llama_cpp import llama_vocab_is_eog

        p = self.params
        counts = counts if counts is not None else {}
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        generated = 0
        # Pieces decoded within `stream_interval_ms` of the last one sent go out together: each
        # message wakes the host, sys and the client, and takes a core from llama.cpp's threads.
        interval = p.stream_interval_ms / 1000
        held: list[str] = []
        held_since = 0.0
        self.generated.append(0)
        for token in self.llm.generate(
            tokens, top_k=p.top_k, top_p=top_p, temp=temperature, repeat_penalty=p.repetition_penalty, reset=True
        ):
            if llama_vocab_is_eog(self.vocab, token):
                break
            if generated >= max_tokens:
                counts["length"] = True
                break
            generated += 1
            counts["generated"] = self.generated[-1] = generated
            piece = decoder.decode(self.llm.detokenize([token], special=False))
            if not piece:
                continue  # an incomplete UTF-8 sequence: wait for the next token
            if not answer:
                self.context.mark("first_token")  # for per-turn latency breakdowns
            answer.append(piece)
            if stop and any(s in "".join(answer[-4:]) for s in stop):
                break
            held.append(piece)
            now = time.monotonic()
            if len(answer) == 1 or now - held_since >= interval:  # the first piece never waits
                yield "".join(held)
                held, held_since = [], now
        tail = decoder.decode(b"", final=True)
        if held or tail:
            yield "".join(held) + tail

    def info(self) -> dict[str, Any]:
        return {
            "generated_tokens": list(self.generated),  # an aborted answer shows as a short one
            "n_threads": self.llm.n_threads,
            "nice": self.nice,
        }

    def _prompt_tokens(self, turn: dict[str, str]) -> tuple[list[int], list[str]]:
        p = self.params
        system = {"role": "system", "content": (p.prompt or DEFAULT_SYSTEM_PROMPT) + p.prompt_suffix}
        history = list(self.history)
        while True:
            formatted = self.formatter(messages=cast(Any, [system, *history, turn]))
            tokens = self.llm.tokenize(formatted.prompt.encode("utf-8"), add_bos=False, special=True)
            if len(tokens) + p.max_token_len <= p.n_ctx or not history:
                break
            history = history[2:]  # forget the oldest exchange to fit the window
        if len(tokens) >= p.n_ctx:
            raise UnitError(Code.MODEL_RUN, detail=f"prompt is {len(tokens)} tokens; n_ctx is {p.n_ctx}")
        stop = formatted.stop if isinstance(formatted.stop, list) else ([formatted.stop] if formatted.stop else [])
        return tokens, [s for s in stop if s]


class ChatRequest:
    """The `llm.chat_completion` inference data: OpenAI-style messages and per-request sampling."""

    ROLES = ("system", "user", "assistant")

    def __init__(
        self,
        messages: list[dict[str, str]],
        max_tokens: int | None,
        temperature: float | None,
        top_p: float | None,
        seed: int | None,
        stop: list[str],
    ):
        self.messages, self.max_tokens, self.temperature = messages, max_tokens, temperature
        self.top_p, self.seed, self.stop = top_p, seed, stop

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> ChatRequest:
        def bad(why: str) -> UnitError:
            return UnitError(Code.PARAMETER, detail=f"llm.chat_completion: {why}")

        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise bad('data needs "messages": a non-empty list of {"role", "content"}')
        clean = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in cls.ROLES or not isinstance(m.get("content"), str):
                raise bad(f'messages[{i}] must be {{"role": one of {list(cls.ROLES)}, "content": str}}')
            clean.append({"role": m["role"], "content": m["content"]})

        def number(key: str, kind: type, lo: float, hi: float) -> Any:
            v = data.get(key)
            if v is None:
                return None
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not lo <= v <= hi
                or (kind is int and int(v) != v)
            ):
                raise bad(f"{key} must be a {kind.__name__} in [{lo}, {hi}], got {v!r}")
            return kind(v)

        stop = data.get("stop") or []
        stop = [stop] if isinstance(stop, str) else stop
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise bad("stop must be a string or a list of strings")
        return cls(
            clean,
            number("max_tokens", int, 1, 32768),
            number("temperature", float, 0.0, 2.0),
            number("top_p", float, 0.0, 1.0),
            number("seed", int, 0, 2**32 - 1),
            stop,
        )
