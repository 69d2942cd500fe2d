"""``lipsync-weights``: list, download, verify and locate the published checkpoints."""
from __future__ import annotations

import argparse
import sys

from lipsync.errors import LipsyncError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lipsync-weights",
        description="Manage the published checkpoints the backends load (cache: $LIPSYNC_CACHE, "
        "weights/cache in a checkout, else ~/.cache/lipsync).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("list", help="registered files and whether they are cached")
    show.add_argument("names", nargs="*", help="checkpoint names or groups (default: all)")
    get = commands.add_parser("download", help="fetch files from the Hugging Face hub and verify them")
    get.add_argument("names", nargs="+", help="checkpoint names or groups, e.g. `sonic` or `sonic.unet`")
    get.add_argument("--force", action="store_true", help="download again even if cached")
    check = commands.add_parser("verify", help="check cached files against their size and sha256")
    check.add_argument("names", nargs="*", help="checkpoint names or groups (default: all cached)")
    where = commands.add_parser("path", help="print the cache path of a file")
    where.add_argument("name")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except LipsyncError as err:
        if args.verbose:
            raise
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from lipsync import weights

    console = Console()
    if args.command == "path":
        print(weights.spec(args.name).cache_path)
        return 0
    entries = weights.select(args.names) if args.names else list(weights.registry().values())
    if args.command == "list":
        table = Table("name", "source", "size", "sha256", "licence", "cached")
        for e in entries:
            size = f"{e.size / 2**20:.1f} MiB" if e.size else "?"
            table.add_row(e.name, e.source, size, (e.sha256 or "-")[:12], e.license, "yes" if e.cache_path.is_file() else "no")
        console.print(table)
        return 0
    if args.command == "download":
        for e in entries:
            path = weights.download(e, force=args.force)
            console.print(f"{e.name}: {path}")
        return 0
    failed = 0
    for e in entries:
        if not e.cache_path.is_file():
            if args.names:
                console.print(f"{e.name}: not cached")
                failed += 1
            continue
        try:
            weights.verify(e, e.cache_path)
            console.print(f"{e.name}: ok")
        except LipsyncError as err:
            console.print(f"{e.name}: {err}")
            failed += 1
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
