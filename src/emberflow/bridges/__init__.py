"""Bridges to systems users already run: protocols served beside the gateways that reach units
through the router only, as in-process clients (`gateways.local.LocalConnection`). No bridge
holds a second implementation of any model.

- `wyoming/`: the Wyoming protocol, so Home Assistant uses emberflow's ASR, TTS, wake word and LLM.
"""
