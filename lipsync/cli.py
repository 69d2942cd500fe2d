"""``lipsync``: the Hydra app.

    lipsync backend=sonic input.image=portrait.jpg input.audio=speech.wav output.path=out.mp4
    lipsync -m backend=viseme backend.mouth_intensity=0.8,1.2

The overrides are composed and validated before Hydra starts (the first value of each sweep in a
multirun), so a typo, a wrong type, an out-of-range value or an unknown backend ends at once with
exit code 2 and one line; so does bad input during the run. ``verbose=true`` shows tracebacks
(the exit code stays). Ctrl-C and SIGTERM end the run with one line and exit code 130 or 143.
"""
from __future__ import annotations

import signal
import sys
import threading
import traceback
from pathlib import Path

from lipsync.errors import ConfigError, Interrupted, LipsyncError

# Hydra flags that take no composition of ours: pass them straight through.
_HYDRA_FLAGS = ("--help", "-h", "--hydra-help", "--version", "--cfg", "-c", "--info", "-i", "--resolve",
                "--shell-completion", "-sc", "--package", "-p", "--config-path", "-cp",
                "--config-name", "-cn", "--config-dir", "-cd")
_failures: list[str] = []


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = any(arg.replace(" ", "").lower() in ("verbose=true", "verbose=1", "+verbose=true") for arg in argv)
    if any(arg.split("=", 1)[0] == "--experimental-rerun" for arg in argv):
        # Hydra would unpickle the file: running whatever code it holds.
        return _report(ConfigError("--experimental-rerun is not supported (it unpickles a file); run the command again instead"))
    handles_signals = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if handles_signals else None
    try:
        return _run(argv, verbose)
    except (KeyboardInterrupt, Interrupted) as err:
        if verbose:
            traceback.print_exc()
        how = "by SIGTERM" if isinstance(err, Interrupted) else "(Ctrl-C)"
        print(f"lipsync: interrupted {how}; nothing was written to the output "
              "(run the same command with resume=true to continue)", file=sys.stderr)
        return Interrupted.exit_code if isinstance(err, Interrupted) else 130
    finally:
        if handles_signals:
            signal.signal(signal.SIGTERM, previous)


def _terminate(signum, frame) -> None:
    raise Interrupted()


def _run(argv: list[str], verbose: bool) -> int:
    if not any(arg.split("=", 1)[0] in _HYDRA_FLAGS for arg in argv):
        try:
            precheck([arg for arg in argv if arg not in ("-m", "--multirun")])
        except LipsyncError as err:
            if verbose:
                traceback.print_exc()
            return _report(err)
    from lipsync.config import register_all

    register_all()
    _failures.clear()
    saved = sys.argv
    sys.argv = [saved[0] if saved else "lipsync"] + argv
    try:
        _app()()
    except SystemExit as exit_request:  # --help, a job's user error (2), Hydra's own failures (1)
        return exit_request.code if isinstance(exit_request.code, int) else 1
    finally:
        sys.argv = saved
    return 2 if _failures else 0


def precheck(overrides: list[str]) -> None:
    """Compose the config these overrides ask for (a sweep's first value) and validate it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from lipsync.api import compose

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as err:
        raise ConfigError(f"cannot parse the command line: {str(err).splitlines()[0]}") from None
    single = []
    for override in parsed:
        key = override.get_key_element()
        if key.startswith(("hydra.", "hydra/", "+hydra", "~hydra")):
            continue
        if override.is_sweep_override():
            value = next(iter(override.sweep_string_iterator()))
            single.append(f"{key}={value}")
        else:
            single.append(override.input_line)
    chosen = [o.split("=", 1)[1] for o in single if o.startswith("backend=")]
    backend = chosen[-1] if chosen else "viseme"  # the last of repeated overrides wins, as in Hydra
    compose(backend, [o for o in single if not o.startswith("backend=")])


def _app():
    import hydra
    from omegaconf import OmegaConf

    from lipsync.registry import GROUPS, options
    from lipsync.resources import data_dir

    # --help lists each group's options (Hydra's own listing would show the schemas too).
    OmegaConf.register_new_resolver(
        "lipsync_groups", lambda: "\n".join(f"{group}: {', '.join(options(group))}" for group in GROUPS), replace=True
    )

    return hydra.main(version_base="1.3", config_path=str(data_dir("conf")), config_name="config")(_task)


def _task(cfg) -> dict | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from lipsync.config import validate
    from lipsync.pipeline import Pipeline
    from lipsync.progress import Reporter

    runtime = HydraConfig.get()
    multirun = runtime.mode == RunMode.MULTIRUN
    try:
        validate(cfg)
        quiet = multirun if cfg.quiet is None else bool(cfg.quiet)
        output = Path(cfg.output.path) if cfg.output.path else default_output(cfg, runtime, multirun)
        pipeline = Pipeline(cfg)
        result = pipeline.run(
            audio=cfg.input.audio,
            output=output,
            image=cfg.input.image,
            video=cfg.input.video,
            text=cfg.input.text,
            reporter=Reporter(quiet=quiet),
        )
    except LipsyncError as err:
        if cfg.verbose:
            traceback.print_exc()
        code = _report(err, prefix=f"job {runtime.job.num}: " if multirun else "")
        if multirun:
            _failures.append(str(err))
            return None
        raise SystemExit(code) from None
    if multirun:
        print(f"job {runtime.job.num}: {result.output} ({result.frames} frames, {result.seconds:.1f} s)", file=sys.stderr)
    return {"output": str(result.output), "frames": result.frames, "seconds": result.seconds}


def default_output(cfg, runtime, multirun: bool) -> Path:
    """``outputs/<audio name>_<backend>.mp4``; in a multirun, ``<backend>.mp4`` in the job's folder."""
    if multirun:
        return Path(runtime.runtime.output_dir) / f"{cfg.backend.name}.mp4"
    stem = Path(str(cfg.input.audio or "output")).stem
    return Path("outputs") / f"{stem}_{cfg.backend.name}.mp4"


def _report(err: LipsyncError, prefix: str = "") -> int:
    print(f"lipsync: error: {prefix}{err}", file=sys.stderr)
    return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
