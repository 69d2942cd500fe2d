"""``lipsync-weights``: list, download, verify, lock and locate the published checkpoints."""
from __future__ import annotations

import argparse
import os
import sys

from lipsync.errors import LipsyncError, run_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lipsync-weights",
        description="Manage the published checkpoints the backends load (cache: $LIPSYNC_CACHE, "
        "weights/cache in a checkout, else ~/.cache/lipsync). Files with a published sha256 are checked "
        "against it; the others against the sha256 the lock recorded when they were first used.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show tracebacks")
    parser.add_argument("--lock", metavar="FILE", help="the lock file (default: $LIPSYNC_WEIGHTS_LOCK, else weights.lock in the cache)")
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("list", help="registered files and whether they are cached")
    show.add_argument("names", nargs="*", help="checkpoint names or groups (default: all)")
    get = commands.add_parser("download", help="fetch files from the Hugging Face hub and verify them")
    get.add_argument("names", nargs="+", help="checkpoint names or groups, e.g. `sonic` or `sonic.unet`")
    get.add_argument("--force", action="store_true", help="download again even if cached")
    check = commands.add_parser(
        "verify", help="check cached files against their published or locked sha256 (records nothing); "
        "names the entries with no published sha256 and whether they are locked")
    check.add_argument("names", nargs="*", help="checkpoint names or groups (default: all)")
    lock = commands.add_parser("lock", help="record the sha256 of cached files that have no published one "
                               "(trust on first use), verify the rest")
    lock.add_argument("names", nargs="*", help="checkpoint names or groups (default: all cached)")
    lock.add_argument("--force", action="store_true", help="record again over an existing record (a file you replaced on purpose)")
    where = commands.add_parser("path", help="print the cache path of a file")
    where.add_argument("name")
    args = parser.parse_args(argv)
    if args.lock:
        from lipsync.weights.lock import LOCK_ENV

        os.environ[LOCK_ENV] = args.lock
    return run_command(parser.prog, lambda: _run(args), args.verbose)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lipsync import weights
    from lipsync.weights.lock import lock_path, locked, record

    console = Console()
    if not console.is_terminal:  # a pipe or a log: lines whole, tables 100 columns wide
        console = Console(soft_wrap=True, width=100)
    if args.command == "path":
        print(weights.spec(args.name).cache_path)
        return 0
    entries = weights.select(args.names) if args.names else list(weights.registry().values())
    if args.command == "lock" and not args.names:
        entries = [e for e in entries if e.cache_path.is_file()]
    if args.command == "list":
        console.print(_table(entries, wide=console.is_terminal and console.width >= WIDE))
        return 0
    if args.command == "download":
        for e in entries:
            path = weights.download(e, force=args.force)
            console.print(f"{e.name}: {path} ({CHECKED[weights.verify(e, path)]})")
        return 0
    failed = 0
    for e in entries:  # every entry gets a line: a silent check proves nothing
        if not e.cache_path.is_file():
            note = "" if e.sha256 else f" (no published sha256; {'locked' if locked(e) else 'not locked'})"
            console.print(f"{e.name}: not cached{note}")
            failed += bool(args.names)  # asked for by name: it should be there
            continue
        try:
            replace = args.command == "lock" and args.force and not e.sha256
            if replace:
                record(e, e.cache_path.stat().st_size, weights.sha256sum(e.cache_path))
            how = weights.verify(e, e.cache_path, record_first_use=args.command == "lock")
            how = "recorded" if replace else how
        except LipsyncError as err:
            console.print(f"{e.name}: FAILED: {err}")
            failed += 1
            continue
        console.print(f"{e.name}: {CHECKED[how]}")
    if args.command == "lock":
        console.print(f"lock: {lock_path()}")
    return 2 if failed else 0


CHECKED = {
    "published": "ok (published sha256)",
    "locked": "ok (sha256 locked on first use; none published)",
    "recorded": "locked now (no published sha256: recorded its sha256, trust on first use)",
    "unverified": "NOT VERIFIED: no published sha256 and not locked; `lipsync-weights lock NAME` records it",
}


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
