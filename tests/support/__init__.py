"""Helpers the test files share (imported as ``support``: pytest puts tests/ on sys.path)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def call(main, argv: list[str]) -> int:  # type: ignore[no-untyped-def]
    """A console script's main run in this process: its exit code (argparse's SystemExit included)."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return 0 if code is None else int(code)
