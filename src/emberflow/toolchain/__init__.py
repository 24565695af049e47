"""Model toolchain: analyze, check, quantize, pack, validate, profile (issue 4)."""
