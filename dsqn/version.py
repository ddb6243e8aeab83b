"""The toolchain's version, written into every model.pt, model.net and report (one place, imported by each)."""

__version__ = "0.1.0"
