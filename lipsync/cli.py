"""``lipsync``: the command line.

    lipsync backend=sonic input.image=portrait.jpg input.audio=speech.wav output.path=out.mp4
    lipsync input.image='portraits/*.jpg' input.audio=speech.wav          (a batch, see lipsync.batch)
    lipsync -m backend=viseme backend.mouth_intensity=0.8,1.2              (a Hydra multirun)

The overrides are parsed, composed and validated before anything heavy is imported (in a multirun
every value of every sweep), so a typo, a wrong type, an out-of-range value, an unknown backend, a
missing input file or a missing checkpoint ends at once with exit code 2 and one line. A single
run (or batch) runs in this process without Hydra's app machinery, so it writes nothing but its
output; ``-m`` and ``hydra.*`` overrides go through Hydra. ``verbose=true`` shows tracebacks
(the exit code stays). Ctrl-C and SIGTERM end the run with one line and exit code 130 or 143.
"""
from __future__ import annotations

import json
import signal
import sys
import threading
import traceback
from pathlib import Path

from lipsync.errors import ConfigError, Interrupted, LipsyncError, report

# Hydra flags that take no composition of ours: pass them straight through.
_HYDRA_FLAGS = ("--help", "-h", "--hydra-help", "--version", "--cfg", "-c", "--info", "-i", "--resolve",
                "--shell-completion", "-sc", "--package", "-p", "--config-path", "-cp",
                "--config-name", "-cn", "--config-dir", "-cd")
_MULTIRUN = ("-m", "--multirun")
PROG = "lipsync"
_failures: list[str] = []


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = any(arg.replace(" ", "").lower() in ("verbose=true", "verbose=1", "+verbose=true") for arg in argv)
    if any(arg.split("=", 1)[0] == "--experimental-rerun" for arg in argv):
        # Hydra would unpickle the file: running whatever code it holds.
        return report(ConfigError("--experimental-rerun is not supported (it unpickles a file); run the command again instead"), PROG)
    handles_signals = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if handles_signals else None
    try:
        return _dispatch(argv, verbose)
    except LipsyncError as err:
        return report(err, PROG, verbose)
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


def _dispatch(argv: list[str], verbose: bool) -> int:
    flags = [arg for arg in argv if arg.split("=", 1)[0] in _HYDRA_FLAGS]
    overrides = [arg for arg in argv if arg not in _MULTIRUN]
    if flags:
        answered = _answer_flags(argv)
        return answered if answered is not None else _hydra(argv)
    multirun = len(overrides) < len(argv)
    cfg = precheck(overrides, multirun=multirun)
    if multirun or any(_is_hydra_key(item.split("=", 1)[0]) for item in overrides):
        return _hydra(argv)
    from lipsync.batch import run

    return run(cfg, verbose=verbose)


def precheck(overrides: list[str], multirun: bool = False):
    """Parse the overrides and compose the config they ask for; in a multirun, once per value of
    every sweep (each with the other sweeps at their first value), so a bad later value fails now.
    Returns the (first) job's composed config. ConfigError naming the argument on the first problem."""
    from lipsync.api import compose

    parsed = parse_overrides(overrides)
    first, sweeps = [], []
    for override in parsed:
        key = override.get_key_element()
        if _is_hydra_key(key):
            continue
        if override.is_sweep_override():
            if not multirun:
                raise ConfigError(
                    f"argument {override.input_line!r} has a comma, which Hydra reads as a sweep: for one value "
                    f"(a path, a text) quote it inside the shell's quotes, \"{key}='...'\"; to sweep, add -m"
                )
            values = [f"{key}={value}" for value in override.sweep_string_iterator()]
            first.append(values[0])
            sweeps.append((len(first) - 1, values[1:]))
        else:
            first.append(override.input_line)
    cfg = compose(*_split_backend(first))
    if multirun:
        _check_input_files(first + [value for _, later in sweeps for value in later])
    for position, later in sweeps:
        for value in later:
            job = first[:position] + [value] + first[position + 1:]
            try:
                compose(*_split_backend(job))
            except ConfigError as err:
                reason = str(err).split(f"override {value}: ", 1)[-1]  # Hydra repeats the override
                raise ConfigError(f"sweep value {value}: {reason}") from None
    return cfg


def _check_input_files(items: list[str]) -> None:
    """Every input file a multirun's jobs will read exists (an unquoted comma in a path splits it
    into a sweep of names that do not)."""
    from lipsync.batch import missing_inputs

    for item in items:
        key, _, value = item.partition("=")
        kind = key.lstrip("+").removeprefix("input.")
        if kind in ("audio", "image", "video") and key.lstrip("+").startswith("input."):
            missing = missing_inputs(**{kind: value.strip("'\"")})
            if missing:
                raise ConfigError(
                    f"{missing[0]}; a path holding a comma is quoted inside the shell's quotes, \"{key}='...'\""
                )


def parse_overrides(overrides: list[str]) -> list:
    """Hydra's parse of each argument; ConfigError with one line naming the argument it cannot read."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    parsed = []
    for item in overrides:
        try:
            parsed.extend(parser.parse_overrides([item]))
        except HydraException:
            key = item.split("=", 1)[0]
            raise ConfigError(
                f"cannot read argument {item!r}: Hydra gives , = [ ] {{ }} ( ) ' \" and spaces a meaning in values; "
                f"quote the value inside the shell's quotes, e.g. \"{key}='...'\""
            ) from None
    return parsed


def _split_backend(items: list[str]) -> tuple[str, list[str]]:
    chosen = [item.split("=", 1)[1] for item in items if item.startswith("backend=")]
    backend = chosen[-1] if chosen else "viseme"  # the last of repeated overrides wins, as in Hydra
    return backend, [item for item in items if not item.startswith("backend=")]


def _is_hydra_key(key: str) -> bool:
    return key.lstrip("+~").startswith(("hydra.", "hydra/"))


def _answer_flags(argv: list[str]) -> int | None:
    """``--help`` and ``--cfg job`` answered from our own composition (Hydra's help composes every
    group option to list them: seconds); None for flags Hydra must handle."""
    rest, answer, resolve, i = [], None, False, 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--help", "-h"):
            answer = "help"
        elif arg in ("--cfg", "-c") and argv[i + 1: i + 2] == ["job"]:
            answer, i = answer or "job", i + 1
        elif arg == "--resolve":
            resolve = True
        elif arg.split("=", 1)[0] in _HYDRA_FLAGS or arg in _MULTIRUN:
            return None
        else:
            rest.append(arg)
        i += 1
    if answer is None:
        return None
    from omegaconf import OmegaConf

    cfg = precheck(rest)
    if answer == "help":
        print(help_text(cfg))
    else:
        print(OmegaConf.to_yaml(cfg, resolve=resolve), end="")
    return 0


def help_text(cfg) -> str:
    """The ``--help`` page: the header, footer and template of ``hydra.help`` in conf/config.yaml."""
    import string

    from omegaconf import OmegaConf

    from lipsync.resources import data_dir

    _register_resolvers()
    page = OmegaConf.load(data_dir("conf") / "config.yaml")
    template = OmegaConf.to_container(page.hydra.help, resolve=True)["template"]
    return string.Template(template).safe_substitute(CONFIG=OmegaConf.to_yaml(cfg)).rstrip()


def _register_resolvers() -> None:
    from omegaconf import OmegaConf

    from lipsync.config import register_all
    from lipsync.registry import GROUPS, options

    register_all()
    # --help lists each group's options (Hydra's own listing would show the schemas too).
    OmegaConf.register_new_resolver(
        "lipsync_groups", lambda: "\n".join(f"{group}: {', '.join(options(group))}" for group in GROUPS), replace=True
    )


def _hydra(argv: list[str]) -> int:
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
    from lipsync.metrics.record import failed_jobs  # jobs run by other processes (joblib, Ray)

    return 2 if _failures or failed_jobs else 0


def _app():
    import hydra

    from lipsync.resources import data_dir

    _register_resolvers()
    return hydra.main(version_base="1.3", config_path=str(data_dir("conf")), config_name="config")(_task)


def _task(cfg) -> dict | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from lipsync.batch import default_output, output_name
    from lipsync.config import validate
    from lipsync.pipeline import Pipeline
    from lipsync.progress import Reporter

    runtime = HydraConfig.get()
    multirun = runtime.mode == RunMode.MULTIRUN
    try:
        validate(cfg)
        quiet = multirun if cfg.quiet is None else bool(cfg.quiet)
        if cfg.output.path:
            output = Path(cfg.output.path)
        elif multirun:  # named after the inputs, in the job's folder
            output = Path(runtime.runtime.output_dir) / output_name(cfg.input.image or cfg.input.video, cfg.input.audio)
        else:
            output = default_output(cfg)
        if multirun:
            record_inputs(cfg, output, Path(runtime.runtime.output_dir))
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
        code = report(err, PROG, cfg.verbose, prefix=f"job {runtime.job.num}: " if multirun else "")
        if multirun:
            _failures.append(str(err))
            return {"error": str(err)}  # for metrics.json (lipsync.metrics.record)
        raise SystemExit(code) from None
    if multirun:
        print(f"job {runtime.job.num}: {result.output} ({result.frames} frames, {result.seconds:.1f} s)", file=sys.stderr)
    return {"output": str(result.output), "frames": result.frames, "seconds": result.seconds,
            "duration": result.duration, "timings": result.timings}


def record_inputs(cfg, output: Path, folder: Path) -> None:
    """``inputs.json`` in a multirun job's folder: the files this job read and the one it wrote."""
    used = {key: _absolute(cfg.input[key]) for key in ("image", "video", "audio")}
    used.update(text=cfg.input.text, output=str(output.resolve()), backend=cfg.backend.name)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "inputs.json").write_text(json.dumps(used, indent=2) + "\n")


def _absolute(path: str | None) -> str | None:
    return str(Path(path).resolve()) if path and Path(path).exists() else path


if __name__ == "__main__":
    sys.exit(main())
