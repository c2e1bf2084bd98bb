"""Formats: export/convert and quantize, one adapter file per format."""
