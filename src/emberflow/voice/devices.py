"""Is there a microphone or a speaker? (PortAudio through sounddevice, imported lazily.)"""

from __future__ import annotations


def microphone_available() -> bool:
    try:
        import sounddevice as sd

        return any(d["max_input_channels"] > 0 for d in sd.query_devices())
    except Exception:  # no PortAudio, no devices, no permission: all mean "no microphone"
        return False


def speaker_available() -> bool:
    try:
        import sounddevice as sd

        return any(d["max_output_channels"] > 0 for d in sd.query_devices())
    except Exception:
        return False
