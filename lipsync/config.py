"""Structured configs: the schema of ``conf/`` as dataclasses in Hydra's ConfigStore.

Every config group option is typed, so a typo, a wrong type or an out-of-range value fails while
the config is composed, before any work starts, with one clear line. Ranges and cross-field rules
are declared with each field (``within``, ``one_of``) and checked when the dataclass is created;
cross-field rules live in its ``__post_init__``. ``validate`` runs them all on the composed config.

The dataclasses are the one place a default is written: ``conf/`` YAML files choose groups and
set only what deliberately differs, and a component's ``__init__`` takes the fields with no
defaults of its own (tests/test_config_defaults.py holds them to it).

A backend (or detector, encoder, interpolator) declares its schema by subclassing the group's
base dataclass and calling ``register_schema``; its YAML in ``conf/<group>/<name>.yaml`` lists
``<name>_schema`` first in its defaults. Schema modules are found by ``register_all``: every
``config`` module inside ``backends.*`` and ``lipsync.*`` packages.
"""
from __future__ import annotations

import importlib
import importlib.util
import threading
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from lipsync.errors import ConfigError


class AudioLonger(str, Enum):
    """What to do with the source video when the audio outlasts it."""

    pingpong = "pingpong"
    loop = "loop"
    hold = "hold"


class AudioShorter(str, Enum):
    """What to do when the audio ends before the source video."""

    trim = "trim"
    pad = "pad"


class FaceSelect(str, Enum):
    """Which face to drive when there are several."""

    largest = "largest"
    index = "index"  # ``face.index``-th from the left
    point = "point"  # the face nearest ``face.point`` (x, y pixels in the first frame)


def within(default: Any, low: float, high: float, open_interval: bool = False) -> Any:
    """A dataclass field: its default and the range its values must lie in (bounds included unless
    ``open_interval``); a None value is not checked. ``Checked`` checks it."""
    return field(default=default, metadata={"range": (low, high, open_interval)})


def one_of(default: Any, choices: tuple | list) -> Any:
    """A dataclass field: its default and the values it may take (None is not checked)."""
    return field(default=default, metadata={"choices": tuple(choices)})


class Checked:
    """Base of a schema whose fields declare their limits (``within``, ``one_of``): creating one,
    as validation does, checks them. A subclass adds cross-field rules in its own ``__post_init__``,
    calling this one first."""

    option_path: ClassVar[str] = ""  # where its options sit, for messages: "output" -> output.crf

    def __post_init__(self) -> None:
        prefix = f"{self.option_path}." if self.option_path else ""
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None:
                continue
            if "range" in item.metadata:
                check_range(prefix + item.name, value, *item.metadata["range"])
            if "choices" in item.metadata:
                check_one_of(prefix + item.name, value, item.metadata["choices"])


@dataclass
class InputConfig:
    image: Optional[str] = None  # still portrait (``astronaut`` = scikit-image's bundled photo)
    video: Optional[str] = None  # source video to re-dub
    audio: Optional[str] = None  # speech: wav, mp3, m4a, flac, ogg (or a video's sound)
    text: Optional[str] = None  # transcript of the audio (sharper timing where a backend uses it)
    # a CSV of jobs, one per row (columns image|video, audio, text, output); globs in image/video/audio also make a batch
    manifest: Optional[str] = None


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


@dataclass
class OutputConfig(Checked):
    option_path: ClassVar[str] = "output"
    path: Optional[str] = None  # default: <dir>/<audio name>_<backend>.mp4 (multirun: the job's folder)
    dir: str = "outputs"  # where outputs without output.path go; a batch's are <source>__<audio>.mp4
    fps: float = within(25.0, 1, 120)  # the published models all run at 25 fps
    crf: int = within(18, 0, 51)  # x264 quality: 0 lossless .. 51 worst
    # x264 speed/size trade-off; measured on 512 px: 7.6 ms/frame, 36.0 dB (medium: 17 ms, 37.1 dB)
    preset: str = one_of("veryfast", X264_PRESETS)
    # false: x264 places B-frames in a fixed pattern (b-adapt=0) instead of searching for the best
    # placement; measured on 512 px talking heads: a third less encoding CPU, 6-16 % smaller files,
    # 0.2 dB lower PSNR (tools/bench.py)
    adaptive_bframes: bool = False


@dataclass
class LengthConfig:
    audio_longer: AudioLonger = AudioLonger.pingpong  # audio outlasts the video: pingpong | loop | hold
    audio_shorter: AudioShorter = AudioShorter.trim  # audio ends first: trim the video | pad the audio with silence


@dataclass
class FaceConfig(Checked):
    option_path: ClassVar[str] = "face"
    select: FaceSelect = FaceSelect.largest  # largest | index (face.index-th from the left) | point (nearest face.point)
    index: int = within(0, 0, 64)
    point: Optional[List[float]] = None  # [x, y] pixels in the first frame
    smoothing: float = within(0.5, 0.0, 1.0)  # 0 = raw landmarks, 1 = heaviest temporal smoothing
    max_gap: int = within(5, 0, 1000)  # frames a tracked face may vanish and still be the same person

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.point is not None and len(self.point) != 2:
            raise ValueError(f"face.point must be [x, y], got {list(self.point)}")
        if self.select == FaceSelect.point and self.point is None:
            raise ValueError("face.select=point needs face.point=[x,y]")


@dataclass
class ComponentConfig(Checked):
    """Base of every instantiable group option (backend, detector, encoder, interpolator)."""

    _target_: str = MISSING
    name: str = MISSING

    def weight_files(self) -> dict[str, Optional[str]]:
        """The registry entries this option loads with these settings, each mapped to the user's
        local file for it (None: the cache). Read from the config alone, so a missing checkpoint
        is reported before the component's module (torch, diffusers...) is imported."""
        return {}

    @property
    def option_path(self) -> str:  # its group: backend.steps, face_detector.max_faces...
        return next(group for group, base in SCHEMA_BASES.items() if isinstance(self, base))


@dataclass
class BackendConfig(ComponentConfig):
    pass


@dataclass
class FaceDetectorConfig(ComponentConfig):
    pass


@dataclass
class AudioEncoderConfig(ComponentConfig):
    pass


@dataclass
class InterpolatorConfig(ComponentConfig):
    pass


@dataclass
class LipsyncConfig(Checked):
    backend: BackendConfig = MISSING
    face_detector: FaceDetectorConfig = MISSING
    audio_encoder: Optional[AudioEncoderConfig] = None
    interpolator: InterpolatorConfig = MISSING
    input: InputConfig = field(default_factory=InputConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    length: LengthConfig = field(default_factory=LengthConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    device: str = "auto"  # auto (CUDA when present), cpu, cuda, cuda:N
    seed: int = 0
    chunk_size: Optional[int] = within(None, 1, 4096)  # frames per chunk (memory bound); default: the backend's choice
    chunk_mb: int = within(128, 1, 65536)  # most megabytes of source frames per chunk: a 4000 px portrait gets fewer frames
    quiet: Optional[bool] = None  # no progress bars; default: bars for a single run, quiet in multirun
    verbose: bool = False  # tracebacks instead of one-line errors
    eval: bool = True  # multirun: weight-free sync scores of each job's video in its metrics.json
    resume: bool = False  # continue an interrupted run (same command) from its last finished chunks

    def __post_init__(self) -> None:
        super().__post_init__()
        check_device("device", self.device, "auto, cpu, cuda or cuda:N")


SCHEMA_BASES: dict[str, type] = {
    "backend": BackendConfig,
    "face_detector": FaceDetectorConfig,
    "audio_encoder": AudioEncoderConfig,
    "interpolator": InterpolatorConfig,
}
_SCHEMA_PACKAGES = ("lipsync", "backends")
_registered = False


def register_schema(group: str, name: str, node: type) -> None:
    """Store ``node`` (a subclass of the group's base) as ``<group>/<name>_schema``."""
    if not issubclass(node, SCHEMA_BASES[group]):
        raise TypeError(f"{node.__name__} must subclass {SCHEMA_BASES[group].__name__}")
    ConfigStore.instance().store(group=group, name=f"{name}_schema", node=node)


def register_all() -> None:
    """Register the app schema and every component schema (imports each ``config`` module)."""
    global _registered
    if _registered:
        return
    ConfigStore.instance().store(name="lipsync_schema", node=LipsyncConfig)
    for module in _schema_modules():
        importlib.import_module(module)
    _registered = True


def _schema_modules() -> list[str]:
    """The ``config`` modules of every package under ``_SCHEMA_PACKAGES``, found on disk: walking
    the packages by import would run every ``__init__`` (``lipsync.metrics`` pulls in torch)."""
    modules = []
    for package_name in _SCHEMA_PACKAGES:
        root = Path(importlib.util.find_spec(package_name).origin).parent
        for path in sorted(root.rglob("config.py")):
            parts = path.relative_to(root.parent).with_suffix("").parts
            if all((root.parent.joinpath(*parts[:i]) / "__init__.py").is_file() for i in range(1, len(parts))):
                modules.append(".".join(parts))
    return [name for name in modules if name != __name__]


def validate(cfg: DictConfig) -> None:
    """Build the typed config objects, which runs every section's range and cross-field checks;
    ConfigError with one line on the first problem."""
    try:
        OmegaConf.to_object(cfg)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    except Exception as err:  # OmegaConf validation errors carry the key and the reason
        raise ConfigError(config_error_line(err)) from None


def check_checkpoints(cfg: DictConfig) -> None:
    """MissingWeightsError naming every registered checkpoint the configured components need and
    the cache lacks (no download, no heavy import); InputError for a named local file that is absent.
    A chosen interpolator counts as needed (whether the backend's rate calls for it is known only
    once the backend is built)."""
    from lipsync.weights.store import require

    typed = OmegaConf.to_object(cfg)
    needed: dict[str, Optional[str]] = {}
    for group in ("backend", "audio_encoder", "face_detector", "interpolator"):
        component = getattr(typed, group)
        if component is not None:
            needed.update(component.weight_files())
    if needed:
        require(list(needed), needed)


def config_error_line(err: BaseException) -> str:
    """One line from an OmegaConf/Hydra error (their messages span several lines; Hydra's
    "Could not override" keeps the reason in the error it wraps)."""

    def useful(error: BaseException) -> tuple[str, str]:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        keep = [line for line in lines if not line.startswith(("full_key", "object_type", "reference_type", "msg"))]
        key = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("full_key:")), "")
        return (keep[0] if keep else (lines[0] if lines else type(error).__name__)), key

    text, full_key = useful(err)
    if err.__cause__ is not None:
        reason, cause_key = useful(err.__cause__)
        text = f"{text.rstrip('.')}: {reason}"
        full_key = full_key or cause_key
    return f"{text} (at {full_key})" if full_key and full_key not in text else text


# While ``declared_limits`` runs a schema's checks, they note the limits they enforce here.
_noted = threading.local()


def check_range(name: str, value: float, low: float, high: float, open_interval: bool = False) -> None:
    limits = getattr(_noted, "limits", None)
    if limits is not None:
        limits[name] = (low, high)
    if open_interval and not low < value < high:
        raise ValueError(f"{name} must be in ({low}, {high}), got {value}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")


def check_one_of(name: str, value: object, choices: tuple | list) -> None:
    limits = getattr(_noted, "limits", None)
    if limits is not None:
        limits[name] = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")


def check_device(name: str, value: str, choices: str) -> None:
    """A torch/onnxruntime device name: auto, cpu, or cuda with an optional index."""
    if value not in ("auto", "cpu") and not value.startswith("cuda"):
        raise ValueError(f"{name} must be {choices}, got {value!r}")


def declared_limits(schema: type, **values: object) -> dict[str, tuple]:
    """The limits a schema's checks enforce, keyed by option name: ``(low, high)`` for a range,
    the tuple of choices for a choice. Read by running the checks on the schema's defaults
    (updated with ``values``), so they are the limits validation applies, never a copy."""
    _noted.limits = {}
    try:
        schema(**values)
        return dict(_noted.limits)
    finally:
        _noted.limits = None
