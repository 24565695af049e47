"""Voice building blocks shared by the audio, vad, kws, asr/whisper and tts units."""
