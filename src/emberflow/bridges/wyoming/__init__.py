"""The Wyoming protocol server for Home Assistant (`wyoming_port: 10700` in the config).

Events are read and written with the `wyoming` package itself; each request is mapped onto an
existing unit (asr, tts, kws, llm) through the router:

| Wyoming (as Home Assistant sends it) | emberflow |
|---|---|
| `describe` -> `info` | the installed models of the catalogue, by unit kind (`programs.py`) |
| `transcribe`, `audio-start/chunk/stop` -> `transcript` | one `asr` inference on the utterance (`stt.py`) |
| `synthesize` -> `audio-start/chunk/stop` | one `tts` inference, audio streamed clause by clause (`tts.py`) |
| `synthesize-start/chunk/stop` -> audio per sentence, `synthesize-stopped` | one `tts` inference per sentence |
| `detect`, audio -> `detection` / `not-detected` | `kws` inferences on the streamed audio (`wake.py`) |
| `transcript` -> `handled` / `not-handled` | one `llm` inference (`handle.py`) |
| `ping` -> `pong` | |
"""
