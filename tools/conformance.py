#!/usr/bin/env python
"""Run conformance fixtures (shared/conformance, see its FORMAT.md) against lipsync.

    python tools/conformance.py FIXTURE.json [FIXTURE.json | FOLDER ...]

Prints one line per fixture: path, module, max abs diff (for a manifest: the number of layout
mismatches), PASS or FAIL and why. A fixture whose module has no handler, an unusable fixture file
(truncated, a tensor missing or of the wrong shape) and a crashing handler each FAIL on their line,
and the run goes on to the next. Exits 1 if any fixture fails, 2 on bad arguments.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def fixture_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*.json") if p.stem.startswith(("parity_", "manifest_"))))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(raw)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="fixture .json files, or folders to search for them")
    args = parser.parse_args(argv)
    try:
        files = fixture_files(args.paths)
    except FileNotFoundError as err:
        print(f"{parser.prog}: error: no such fixture file or folder: {err} (give fixture .json files, or folders "
              f"holding them, e.g. ../shared/conformance)", file=sys.stderr)
        return 2
    import torch

    from lipsync import conformance

    torch.set_grad_enabled(False)
    conformance.load_handlers()
    failed = 0
    for path in files:
        result = conformance.run_fixture(path)
        print(result.line(), flush=True)
        failed += result.status != "PASS"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
