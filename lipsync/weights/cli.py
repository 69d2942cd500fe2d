"""``lipsync-weights``: list, download, verify and locate the published checkpoints."""
from __future__ import annotations

import argparse
import sys

from lipsync.errors import LipsyncError, run_command


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
    return run_command(parser.prog, lambda: _run(args), args.verbose)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lipsync import weights

    console = Console()
    if not console.is_terminal:  # a pipe or a log: lines whole, tables 100 columns wide
        console = Console(soft_wrap=True, width=100)
    if args.command == "path":
        print(weights.spec(args.name).cache_path)
        return 0
    entries = weights.select(args.names) if args.names else list(weights.registry().values())
    if args.command == "list":
        console.print(_table(entries, wide=console.is_terminal and console.width >= WIDE))
        return 0
    if args.command == "download":
        for e in entries:
            path = weights.download(e, force=args.force)
            console.print(f"{e.name}: {path}")
        return 0
    failed = 0
    for e in entries:  # every entry gets a line: a silent verify proves nothing
        if not e.cache_path.is_file():
            console.print(f"{e.name}: not cached")
            failed += bool(args.names)  # asked for by name: it should be there
            continue
        try:
            weights.verify(e, e.cache_path)
        except LipsyncError as err:
            console.print(f"{e.name}: FAILED: {err}")
            failed += 1
            continue
        console.print(f"{e.name}: ok" if e.sha256 else f"{e.name}: ok by size only (no published sha256)")
    return 2 if failed else 0


WIDE = 160  # a terminal this wide gets the sources and whole licences


def _table(entries, wide: bool):
    """Names are never cut; a narrow table (fits 100 columns) keeps each licence's first clause."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("name", no_wrap=True)
    if wide:
        table.add_column("source", overflow="fold")
    table.add_column("size", no_wrap=True, justify="right")
    table.add_column("sha256", no_wrap=True)
    table.add_column("licence")
    table.add_column("cached", no_wrap=True)
    for e in entries:
        size = f"{e.size / 2**20:.1f} MiB" if e.size else "?"
        licence = e.license if wide else e.license.split(";")[0].split(" (")[0]
        row = [e.name] + ([e.source] if wide else []) + [size, e.sha256[:12] if e.sha256 else "none published", licence]
        table.add_row(*row, "yes" if e.cache_path.is_file() else "no")
    return table


if __name__ == "__main__":
    sys.exit(main())
