"""``lipsync-ui``: start the web app.

    lipsync-ui                      # http://127.0.0.1:7860
    lipsync-ui ui.port=8080 ui.concurrency=2

Options are checked before anything starts: a bad one ends with exit code 2 and one line.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from lipsync.errors import run_command

_PASS_THROUGH = ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--resolve")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = any(arg.replace(" ", "").lower() in ("verbose=true", "verbose=1") for arg in argv)
    if not any(arg.split("=", 1)[0] in _PASS_THROUGH for arg in argv):
        from lipsync.api import compose_config

        def check() -> int:
            compose_config("ui", argv)
            return 0

        if code := run_command("lipsync-ui", check, verbose):
            return code
    import hydra

    from lipsync.config import register_all
    from lipsync.resources import data_dir

    register_all()
    saved = sys.argv
    sys.argv = [saved[0] if saved else "lipsync-ui"] + argv
    try:
        hydra.main(version_base="1.3", config_path=str(data_dir("conf")), config_name="ui")(_serve)()
    except SystemExit as exit_request:
        return exit_request.code if isinstance(exit_request.code, int) else 1
    except KeyboardInterrupt:
        return 130
    finally:
        sys.argv = saved
    return 0


def _serve(cfg) -> None:
    root = Path(tempfile.mkdtemp(prefix="lipsync-ui-"))
    # Uploads and results live in Gradio's cache: inside the app's folder, removed when it stops.
    os.environ["GRADIO_TEMP_DIR"] = str(root / "gradio")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    signal.signal(signal.SIGTERM, _terminate)  # stop as on Ctrl-C: the folder is removed on the way out
    try:
        from lipsync.ui.app import serve

        serve(cfg.ui, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _terminate(signum, frame) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
