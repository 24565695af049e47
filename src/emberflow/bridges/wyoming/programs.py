"""What `describe` answers: the installed models of the catalogue as Wyoming programs.

Built once when the bridge starts (a catalogue scan reads descriptor files and voice configs),
so `info` goes out at once: Home Assistant gives it 1 s. Only kinds the daemon can run are
advertised, and only models whose weights are installed (`installed: true` is what HA checks).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    HandleModel,
    HandleProgram,
    Info,
    TtsProgram,
    TtsVoice,
    WakeModel,
    WakeProgram,
)

from emberflow import __version__
from emberflow.models.catalogue import Catalogue

EMBERFLOW = Attribution(name="emberflow", url="")
# The unit kinds each Wyoming service maps onto, in order of preference: the second is the same
# unit class under StackFlow's other name, used when the first one's single task is taken.
ASR_KINDS = ("asr", "whisper")
TTS_KINDS = ("tts", "melotts")
WAKE_KINDS = ("kws",)
HANDLE_KINDS = ("llm",)


@dataclass
class Models:
    """Installed models per service, with the languages each one serves (first one: the default)."""

    asr: dict[str, list[str]] = field(default_factory=dict)
    tts: dict[str, list[str]] = field(default_factory=dict)
    wake: dict[str, str] = field(default_factory=dict)  # wake word id -> its phrase
    wake_model: str | None = None  # the catalogue model that holds the wake words
    handle: dict[str, list[str]] = field(default_factory=dict)
    descriptors: dict[str, dict[str, Any]] = field(default_factory=dict)

    def pick(self, service: str, name: str | None = None, language: str | None = None) -> str | None:
        """The model a request asks for by name, else one that speaks `language`, else the default."""
        models: dict[str, list[str]] = getattr(self, service)
        if name in models:
            return name
        if language:
            lang = language.lower().replace("-", "_")
            for model, langs in models.items():
                if any(lang == x.lower() or lang.split("_")[0] == x.lower().split("_")[0] for x in langs):
                    return model
        return next(iter(models), None)


def installed_models(catalogue: Catalogue, kinds: Collection[str]) -> Models:
    out = Models()
    defaults_first = sorted(catalogue.models.values(), key=lambda d: (not d.get("default"), d["mode"]))
    for desc in defaults_first:
        if not catalogue.is_installed(desc):
            continue
        name, kind = desc["mode"], desc.get("type")
        out.descriptors[name] = desc
        if kind == "asr" and kinds_present(kinds, ASR_KINDS):
            out.asr[name] = _asr_languages(desc)
        elif kind == "tts" and kinds_present(kinds, TTS_KINDS):
            out.tts[name] = _tts_languages(catalogue, desc)
        elif kind == "kws" and kinds_present(kinds, WAKE_KINDS) and out.wake_model is None:
            out.wake_model = name
            out.wake = {kw: kw.replace("_", " ").title() for kw in desc.get("keywords", [])}
        elif kind == "llm" and kinds_present(kinds, HANDLE_KINDS):
            out.handle[name] = ["en"]  # the default LLM is an English chat model
    return out


def kinds_present(kinds: Collection[str], wanted: tuple[str, ...]) -> bool:
    return any(k in kinds for k in wanted)


def build_info(models: Models) -> Info:
    def model(name: str, description: str | None = None) -> dict[str, Any]:
        """The fields every advertised model shares (an Artifact)."""
        desc = models.descriptors.get(name, {})
        about = desc.get("notes", "").split(". ")[0][:200] or name
        return {
            "name": name,
            "attribution": Attribution(name=name, url=desc.get("homepage", "")),
            "installed": True,
            "description": description or about,
            "version": None,
        }

    def program(service: str, description: str) -> dict[str, Any]:
        return {
            "name": f"emberflow-{service}",
            "attribution": EMBERFLOW,
            "installed": True,
            "description": description,
            "version": __version__,
        }

    info = Info()
    if models.asr:
        info.asr = [
            AsrProgram(
                **program("asr", "Whisper speech recognition (faster-whisper) on emberflow's asr unit"),
                models=[AsrModel(**model(m), languages=langs) for m, langs in models.asr.items()],
                supports_transcript_streaming=False,
            )
        ]
    if models.tts:
        info.tts = [
            TtsProgram(
                **program("tts", "Piper speech synthesis on emberflow's tts unit, sentence by sentence"),
                voices=[TtsVoice(**model(m), languages=langs) for m, langs in models.tts.items()],
                supports_synthesize_streaming=True,
            )
        ]
    if models.wake and models.wake_model:
        wake_model = models.wake_model
        info.wake = [
            WakeProgram(
                **program("wake", "microWakeWord on emberflow's kws unit"),
                models=[
                    WakeModel(**{**model(wake_model, phrase), "name": kw}, languages=["en"], phrase=phrase)
                    for kw, phrase in models.wake.items()
                ],
            )
        ]
    if models.handle:
        info.handle = [
            HandleProgram(
                **program("llm", "emberflow's llm unit as a conversation agent"),
                models=[HandleModel(**model(m), languages=langs) for m, langs in models.handle.items()],
                supports_handled_streaming=False,
            )
        ]
    return info


def _asr_languages(desc: dict[str, Any]) -> list[str]:
    if "Multilingual" not in desc.get("capabilities", []):
        return ["en"]
    try:  # the languages Whisper's tokenizer knows, from the runtime that decodes them
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        return ["en", *sorted(c for c in _LANGUAGE_CODES if c != "en")]
    except ImportError:
        return ["en"]


def _tts_languages(catalogue: Catalogue, desc: dict[str, Any]) -> list[str]:
    """A Piper voice says its language in its config (`en_US`); espeak-ng's default voice is English."""
    weights = catalogue.weights_path(desc)
    if weights is not None:
        config = weights.with_name(weights.name + ".json")
        if config.is_file():
            code = json.loads(config.read_text()).get("language", {}).get("code")
            if code:
                return [code]
    return [desc.get("mode_param", {}).get("voice", "en-us").replace("-", "_")]
