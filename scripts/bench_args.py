"""Comma-separated list arguments of `bench.py` and its scenarios' own options."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ("int_list", "name_list")


def int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def name_list(known: tuple[str, ...]) -> Callable[[str], list[str]]:
    """A parser of names, each of which must be one of `known`."""

    def parse(text: str) -> list[str]:
        names = [part.strip() for part in text.split(",") if part.strip()]
        unknown = [name for name in names if name not in known]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; known: {', '.join(known)}")
        return names

    return parse
