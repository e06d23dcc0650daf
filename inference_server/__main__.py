"""privastream {serve,redact,fetch-models,setup-obs} (also `python -m inference_server ...`)

Each subcommand lives in its own module with ``add_arguments(parser)`` and
``run(args) -> int``; they are imported only when chosen, so a light command
does not load the models of a heavy one.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from .errors import PrivaStreamError

COMMANDS = {
    "serve": ("inference_server.server", "run the live inference service for OBS and the demo"),
    "redact": ("inference_server.redact", "redact a recorded video file"),
    "fetch-models": ("inference_server.fetch_cli", "extract and verify the model files"),
    "setup-obs": ("obs_plugin.setup_obs", "record this environment for OBS's script and add the filters to OBS"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    prog = "python -m inference_server" if Path(sys.argv[0]).name == "__main__.py" else "privastream"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return importlib.import_module(COMMANDS[args.command][0]).run(args)
    except PrivaStreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
