"""The vlm unit (StackFlow §7.7): questions about an image, answered as streamed text.

StackFlow semantics: an image inference (`vlm.jpeg.base64`, `vlm.jpeg.stream.base64`, a RAW
`cv.jpeg.base64` frame) is stored silently and used by the next text inference; a linked
`camera.N` makes the newest frame the image; `asr.N` text is answered; a `kws` wake aborts;
the text `reset` forgets the image and the conversation.

Two backends behind the one unit:
- `grounded` (the default, because no VLM ships in any package): NOT a vision-language model.
  The vision models' facts (objects with positions, ImageNet classes, OCR text, faces; see
  emberflow.vision.scene) go to the LLM, which answers from them and says what it cannot see.
  The answer starts with a one-line summary built from the facts alone (`summary`), so even a
  135M LLM gives a grounded answer. taskinfo says which backend answered.
- `llama`: a real VLM, a GGUF with its mmproj run by llama.cpp's multimodal support, used
  whenever a descriptor names one (`mode_param`: model_path, mmproj_path, chat_handler).

The LLM of the grounded backend is the llm unit's own class, run in this process: one llama.cpp
code path for both, and the image facts never leave the unit.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
from pydantic import Field

from emberflow.unit import IO, Code, Unit, UnitError, UnitParams, descriptor_field
from emberflow.vision import frames
from emberflow.vision.image import DEFAULT_MAX_PIXELS, decode

GROUNDED_PROMPT = (
    "You answer questions about a camera image, but you cannot see it. Vision models looked at "
    "it and reported the facts below. Answer only from these facts, in one or two short sentences. "
    "If the facts do not tell, say that you cannot tell from what the camera models saw."
)
RESET_REPLY = "Context has been reset."
NO_IMAGE = "I have no image yet: send one (object vlm.jpeg.base64) or link a camera task, then ask again."


class VLMParams(UnitParams):
    response_format: Literal["vlm.utf-8", "vlm.utf-8.stream"] = "vlm.utf-8.stream"
    prompt: str = Field("", description="System prompt; empty uses the backend's own.")
    max_token_len: int = Field(96, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    backend: Literal["grounded", "llama"] = Field("grounded", description="Set by the model's descriptor.")
    summary: bool = Field(True, description="Grounded: start the answer with the facts' one-line summary.")
    context: bool = Field(False, description="Keep the conversation between questions ('reset' clears it).")
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1, le=200_000_000)
    n_threads: int = Field(1, ge=0, le=64, description="Vision models' onnxruntime threads.")
    llm: str = Field("smollm2-135m-instruct", description="Grounded: the LLM that words the answer.")
    detector: str = Field("nanodet-m", description="Grounded: object detector ('' to skip).")
    classifier: str = Field("efficientnet-lite0", description="Grounded: image classifier ('' to skip).")
    ocr: str = Field("ppocr-v5", description="Grounded: text reader ('' to skip).")
    faces: str = Field("blazeface", description="Grounded: face detector ('' to skip).")
    mmproj_path: str = descriptor_field("", "llama backend: the multimodal projector GGUF.")
    chat_handler: str = descriptor_field("Llava15ChatHandler", "llama backend: llama_cpp.llama_chat_format class.")
    n_ctx: int = Field(4096, ge=512, le=131072)


class VLMUnit(Unit[VLMParams]):
    """Questions about images: a real VLM when one is installed, else grounded on the vision models."""

    kind = "vlm"
    max_tasks = 2
    Params = VLMParams
    inputs = {"chat": IO.JSON, "image": IO.IMAGE, "text": IO.TEXT}
    outputs = {"text": IO.TEXT_STREAM}
    model_path: Any = None

    def setup(self, params: VLMParams) -> None:
        self.params = params
        self.image: np.ndarray | None = None  # the stored image (RGB)
        self.frame: tuple[Any, bytes] | None = None  # newest camera frame, decoded only when asked about
        self.scene: Any = None  # facts of the stored image, computed once
        self.answers = 0
        if params.backend == "llama":
            self._setup_llama(params)
        else:
            self._setup_grounded(params)

    # --- backends ---------------------------------------------------------------------------------
    def _setup_grounded(self, params: VLMParams) -> None:
        from emberflow.models.catalogue import Catalogue
        from emberflow.units.llm import LLMParams, LLMUnit
        from emberflow.vision.scene import SceneAnalyser

        cat = Catalogue()
        try:
            ref = cat.resolve(params.llm)
        except KeyError:
            raise UnitError(
                Code.MODEL_LOADING, detail=f"the grounded backend's LLM {params.llm!r} is unknown"
            ) from None
        path = cat.weights_path(ref.descriptor)
        if path is None:
            raise UnitError(
                Code.MODEL_LOADING,
                detail=f"the grounded backend needs the LLM {ref.name}: run `emberflow models install {ref.name}`",
            )
        self.analyser = SceneAnalyser(
            {"detector": params.detector, "classifier": params.classifier, "ocr": params.ocr, "faces": params.faces},
            params.n_threads,
        )
        self.llm = LLMUnit()
        self.llm.model_path = path
        self.llm.context = self.context
        self.llm.setup(
            LLMParams.model_validate(
                {
                    **ref.mode_param,
                    "model": ref.name,
                    "prompt": params.prompt or GROUNDED_PROMPT,
                    "max_token_len": params.max_token_len,
                    "temperature": params.temperature,
                    "context": params.context,
                    "response_format": "llm.utf-8.stream",
                }
            )
        )

    def _setup_llama(self, params: VLMParams) -> None:
        import os

        from llama_cpp import Llama, llama_chat_format

        if self.model_path is None or not params.mmproj_path or not os.path.isfile(params.mmproj_path):
            raise UnitError(
                Code.MODEL_LOADING,
                detail="the llama backend needs mode_param model_path (the VLM GGUF) "
                "and mmproj_path (its projector), both existing files",
            )
        handler_cls = getattr(llama_chat_format, params.chat_handler, None)
        if handler_cls is None:
            raise UnitError(Code.MODEL_LOADING, detail=f"llama_cpp has no chat handler {params.chat_handler!r}")
        self.vlm = Llama(
            model_path=str(self.model_path),
            chat_handler=handler_cls(clip_model_path=params.mmproj_path, verbose=False),
            n_ctx=params.n_ctx,
            verbose=False,
        )

    def teardown(self) -> None:
        for name in ("llm", "vlm"):
            model = getattr(self, name, None)
            if model is not None:
                (model.teardown if name == "llm" else model.close)()

    # --- inputs -------------------------------------------------------------------------------------
    def infer(self, data: Any) -> Any:
        if isinstance(data, (bytes, bytearray)):  # an image: stored, no answer (StackFlow)
            self.image, self.scene, self.frame = decode(data, self.params.max_pixels), None, None
            return None
        if isinstance(data, dict):
            return self._chat(data)
        return self._ask(data)

    def on_frame(self, frame: Any) -> Any:
        if frame.payload and (isinstance(frame.data, dict) or frame.object.startswith(("camera", "image"))):
            self.frame, self.image, self.scene = (frame.data, frame.payload), None, None  # the newest wins
            return None
        return super().on_frame(frame)  # asr text: answered

    def _current_image(self) -> np.ndarray | None:
        if self.image is None and self.frame is not None:
            self.image = frames.to_rgb(self.frame[0], self.frame[1], self.params.max_pixels)
        return self.image

    # --- answers --------------------------------------------------------------------------------------
    def _ask(self, text: str) -> Iterator[str]:
        if text.strip().lower() == "reset":
            self.image = self.scene = self.frame = None
            if hasattr(self, "llm"):
                self.llm.history.clear()
            yield RESET_REPLY
            return
        image = self._current_image()
        if image is None:
            yield NO_IMAGE
            return
        self.answers += 1
        if self.params.backend == "llama":
            yield from self._llama([{"role": "user", "content": [_image_part(image), {"type": "text", "text": text}]}])
            return
        scene = self._scene(image)
        if self.params.summary:
            yield scene.summary() + " "
        self.llm.context = self.context
        yield from self.llm.infer(f"{scene.facts()}\n\nQuestion: {text}")

    def _chat(self, data: dict[str, Any]) -> Iterator[str]:
        """An OpenAI-style conversation (`vlm.chat_completion`): messages whose content may hold
        images (`{"type": "image", "data": base64}` parts, as the HTTP gateway sends them)."""
        messages, images = _split_images(data.get("messages"))
        image = None  # a request is self-contained: its own (last) image, nothing stored from another
        for raw in images:
            try:
                image = decode(raw, self.params.max_pixels)
            except UnitError as e:  # a bad image in a request is the request's fault (HTTP 400), not the model's
                raise UnitError(Code.PARAMETER, detail=e.detail) from None
        self.answers += 1
        if self.params.backend == "llama":
            if image is not None:
                last = messages[-1]
                messages[-1] = {**last, "content": [_image_part(image), {"type": "text", "text": last["content"]}]}
            yield from self._llama(messages, data)
            return
        if image is None:
            facts = "No image was given."
        else:
            scene = self.scene = self.analyser(image)
            facts = scene.facts()
            if self.params.summary:
                yield scene.summary() + " "
        question = messages[-1]
        messages[-1] = {**question, "content": f"{facts}\n\nQuestion: {question['content']}"}
        if not any(m["role"] == "system" for m in messages):  # the caller's own system prompt wins
            messages.insert(0, {"role": "system", "content": self.params.prompt or GROUNDED_PROMPT})
        self.llm.context = self.context
        yield from self.llm.infer({**{k: v for k, v in data.items() if k != "messages"}, "messages": messages})

    def _scene(self, image: np.ndarray) -> Any:
        if self.scene is None:
            self.scene = self.analyser(image)
        return self.scene

    def _llama(self, messages: list[dict[str, Any]], data: dict[str, Any] | None = None) -> Iterator[str]:
        system = [{"role": "system", "content": self.params.prompt}] if self.params.prompt else []
        stream = self.vlm.create_chat_completion(
            messages=system + messages,
            stream=True,
            max_tokens=(data or {}).get("max_tokens") or self.params.max_token_len,
            temperature=self.params.temperature,
        )
        for chunk in stream:
            if self.context.cancelled.is_set():
                return
            choice: Any = chunk["choices"][0]  # type: ignore[index]
            piece = choice.get("delta", {}).get("content")
            if piece:
                yield piece

    def info(self) -> dict[str, Any]:
        backend = (
            "llama.cpp multimodal (a real VLM)"
            if self.params.backend == "llama"
            else "grounded: NOT a vision-language model; the vision models' facts are given to the LLM "
            f"{self.params.llm}"
        )
        image = "camera frame" if self.frame is not None else None
        if self.image is not None and self.frame is None:
            image = f"{self.image.shape[1]}x{self.image.shape[0]}"
        out: dict[str, Any] = {"backend": backend, "answers": self.answers, "image": image}
        if self.params.backend == "grounded":
            out["vision_models"] = self.analyser.names
            out["not_installed"] = self.analyser.missing
            if self.scene is not None:
                out["last_facts"] = self.scene.to_dict()
        return out


def _image_part(rgb: np.ndarray) -> dict[str, Any]:
    from emberflow.vision.image import encode_jpeg

    return {
        "type": "image_url",
        "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(encode_jpeg(rgb, 90)).decode()},
    }


def _split_images(messages: Any) -> tuple[list[dict[str, Any]], list[bytes]]:
    """Text-only messages and the images found in them, in order."""
    if not isinstance(messages, list) or not messages:
        raise UnitError(Code.PARAMETER, detail='vlm.chat_completion: data needs "messages": a non-empty list')
    out, images = [], []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise UnitError(Code.PARAMETER, detail=f"vlm.chat_completion: messages[{i}] needs a role")
        content = m.get("content")
        if isinstance(content, list):
            texts = []
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image":
                    try:
                        images.append(base64.b64decode(part.get("data", ""), validate=True))
                    except ValueError:
                        raise UnitError(Code.BASE64, detail=f"messages[{i}]: an image part is not base64") from None
                elif isinstance(part, dict) and part.get("type") == "text":
                    texts.append(str(part.get("text", "")))
            content = "".join(texts)
        if not isinstance(content, str):
            raise UnitError(Code.PARAMETER, detail=f"vlm.chat_completion: messages[{i}].content must be text or parts")
        out.append({"role": m["role"], "content": content})
    return out, images
