"""The Gradio page and its HTTP API.

A form over each backend's main options (read from the backend's schema: defaults, ranges and
choices as validation applies them) that runs jobs through ``lipsync.load`` and ``Pipeline.run``,
the same path as the ``lipsync`` command. Every request works in a folder of its own under the
app's temporary root, removed once the result has been handed to Gradio; the root itself goes
when the app stops.
"""
from __future__ import annotations

import inspect
import logging
import shutil
import tempfile
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import gradio as gr
from omegaconf import OmegaConf

import lipsync
from lipsync.api import compose
from lipsync.config import X264_PRESETS, FaceSelect, declared_limits
from lipsync.errors import InputError, LipsyncError, MissingWeightsError, first_line
from lipsync.media.video import is_image
from lipsync.pipeline import Result
from lipsync.progress import Reporter, Stage
from lipsync.registry import options
from lipsync.resources import data_dir

log = logging.getLogger(__name__)

# The options the page shows for each backend (the rest keep their configured values).
MAIN_OPTIONS = {
    "viseme": ("mouth_intensity", "smoothing", "blink_rate", "head_motion"),
    "sonic": ("steps", "audio_guidance", "image_guidance", "dynamic_scale", "keep_resolution"),
    "latentsync": ("version", "steps", "guidance", "deepcache"),
    "synctalk2d": ("person", "checkpoint", "runtime"),
}
# Fixed inputs of the generate endpoint, in order; the backends' options follow as <backend>_<option>.
FIXED_PARAMS = ("source", "audio", "text", "backend", "face_select", "face_index", "face_point",
                "interpolator", "crf", "preset")


@dataclass(frozen=True)
class Knob:
    """One backend option shown in the page."""

    backend: str
    key: str
    default: Any
    limits: tuple | None  # (low, high) for a range, the choices for a choice, None if free

    @property
    def param(self) -> str:
        return f"{self.backend}_{self.key}"

    def component(self) -> gr.components.Component:
        label = self.key.replace("_", " ")
        if isinstance(self.default, bool):
            return gr.Checkbox(value=self.default, label=label)
        if self.limits and not _is_range(self.limits):
            return gr.Dropdown(choices=[str(c) for c in self.limits], value=str(self.default), label=label)
        if isinstance(self.default, (int, float)) and self.limits:
            low, high = self.limits
            integer = isinstance(self.default, int)
            if integer and high - low > 200:
                return gr.Number(value=self.default, minimum=low, maximum=high, precision=0, label=label)
            step = 1 if integer else _nice_step(high - low)
            return gr.Slider(minimum=low, maximum=high, value=self.default, step=step, label=label)
        if isinstance(self.default, (int, float)):
            return gr.Number(value=self.default, label=label)
        return gr.Textbox(value=self.default or "", label=label)

    def value(self, raw: Any) -> Any:
        """The page's value as the config's type ('' is unset)."""
        if raw is None or raw == "":
            return None
        if isinstance(self.default, bool):
            return bool(raw)
        if isinstance(self.default, int) and not isinstance(self.default, bool):
            return int(round(float(raw)))
        if isinstance(self.default, float):
            return float(raw)
        return str(raw)


def _is_range(limits: tuple) -> bool:
    return len(limits) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in limits)


def _nice_step(span: float) -> float:
    step = span / 100
    for nice in (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0):
        if step <= nice:
            return nice
    return round(step)


def backend_knobs(backend: str) -> list[Knob]:
    """The page's options of ``backend``: defaults as the CLI composes them, limits from its schema."""
    cfg = compose(backend)
    limits = declared_limits(OmegaConf.get_type(cfg.backend))
    return [
        Knob(backend, key, cfg.backend[key], limits.get(f"backend.{key}"))
        for key in MAIN_OPTIONS.get(backend, ())
        if key in cfg.backend
    ]


class Availability:
    """Which backends can run here, checked once in the background (loading the libraries of
    every backend takes a while): None for ready, else the one-line reason."""

    def __init__(self, backends: list[str]):
        self._reasons: dict[str, str | None] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._check, args=(backends,), daemon=True)
        self._thread.start()

    def _check(self, backends: list[str]) -> None:
        for backend in backends:
            try:
                lipsync.load(backend).pipeline.check_weights()
                self._reasons[backend] = None
            except MissingWeightsError as err:
                self._reasons[backend] = f"unavailable: {err}"
            except LipsyncError as err:  # e.g. synctalk2d without a person: usable once it is set
                self._reasons[backend] = f"needs settings: {err}"
            except Exception as err:  # a broken install must not take the page down
                self._reasons[backend] = f"unavailable: {first_line(err)}"
        self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def reason(self, backend: str) -> str | None:
        return self._reasons.get(backend)

    def markdown(self) -> str:
        if not self._done.is_set():
            return "Checking which backends can run here…"
        lines = []
        for backend, reason in self._reasons.items():
            lines.append(f"- **{backend}**: " + ("ready" if reason is None else reason.replace("`", "")))
        return "\n".join(lines)


class Pipelines:
    """Loaded pipelines by configuration, the most recently used kept (networks load once)."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[tuple, lipsync.api.LipSync] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, backend: str, overrides: dict[str, Any]) -> lipsync.api.LipSync:
        """The pipeline for this configuration, loaded on first use (jobs on one pipeline take
        turns: ``Pipeline.run``)."""
        key = (backend, tuple(sorted((k, repr(v)) for k, v in overrides.items())))
        with self._lock:
            if key not in self._items:
                self._items[key] = lipsync.load(backend, **overrides)
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
            self._items.move_to_end(key)
            return self._items[key]


class PageReporter(Reporter):
    """The pipeline's stages shown as Gradio progress (the CLI shows the same stages as bars)."""

    def __init__(self, progress: gr.Progress):
        super().__init__(quiet=True)
        self._page = progress

    @contextmanager
    def stage(self, description: str, total: float | None = None) -> Iterator[Stage]:
        stage = _PageStage(self._page, description, total)
        stage.show()
        yield stage

    def warn(self, message: str) -> None:
        self.warnings.append(message)


class _PageStage(Stage):
    def __init__(self, page: gr.Progress, description: str, total: float | None):
        super().__init__(None, None)
        self._page, self._description, self._total = page, description, total

    def show(self) -> None:
        done = (int(self.completed), int(self._total)) if self._total else None
        self._page(done, desc=self._description)

    def advance(self, amount: float = 1) -> None:
        super().advance(amount)
        self.show()

    def set_total(self, total: float | None) -> None:
        self._total = total
        self.show()


def media_duration(path: str | Path, what: str) -> float:
    """Seconds of an audio or video file, from its container; InputError naming ``what`` the
    file should have been when it is not media."""
    import av

    try:
        with av.open(str(path)) as container:
            if container.duration is not None:
                return container.duration / av.time_base
            streams = [s for s in container.streams if s.type in ("audio", "video") and s.duration]
            if not streams:
                raise ValueError("no audio or video stream")
            return max(float(s.duration * s.time_base) for s in streams)
    except Exception:
        raise InputError(f"{Path(path).name} is not {what}") from None


def summary_markdown(result: Result) -> str:
    lines = [
        f"**Done**: {result.frames} frames at {result.fps:g} fps ({result.duration:.2f} s of video) "
        f"in {result.seconds:.1f} s, {result.realtime_factor:.2f}x real time.",
        "",
        "Stages: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.timings.items()),
    ]
    if result.frames_without_face:
        lines += ["", f"{result.frames_without_face} source frames had no face and passed through unchanged."]
    for warning in result.warnings:
        lines += ["", f"Note: {warning}"]
    return "\n".join(lines)


class App:
    """The page, its job runner and the state they share."""

    def __init__(self, cfg, root: Path):
        self.cfg = cfg
        self.root = root
        self.jobs = root / "jobs"
        self.jobs.mkdir(parents=True, exist_ok=True)
        self.backends = options("backend")
        self.knobs = {backend: backend_knobs(backend) for backend in self.backends}
        self.available = Availability(self.backends)
        self.pipelines = Pipelines(int(cfg.pipelines))

    # -- the job ------------------------------------------------------------------------------

    def run(self, *values: Any, progress: gr.Progress = gr.Progress()) -> Iterator[tuple[str, str]]:
        """Render one clip; yields (video path, summary). The job's folder is removed after the
        result has been passed on (the generator resumes once Gradio has taken the file)."""
        names = list(FIXED_PARAMS) + [knob.param for knobs in self.knobs.values() for knob in knobs]
        given = dict(zip(names, values))
        work = Path(tempfile.mkdtemp(prefix="job-", dir=self.jobs))
        try:
            try:
                result = self._render(given, work, progress)
            except LipsyncError as err:
                raise gr.Error(str(err), print_exception=False) from None
            except gr.Error:
                raise
            except Exception as err:  # the page shows one line; the server log keeps the traceback
                log.exception("generation failed")
                raise gr.Error(f"generation failed: {first_line(err)}", print_exception=False) from None
            yield str(result.output), summary_markdown(result)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _render(self, given: dict[str, Any], work: Path, progress: gr.Progress) -> Result:
        source, audio = given.get("source"), given.get("audio")
        if not source:
            raise InputError("upload a portrait (an image) or a video to animate")
        if not audio:
            raise InputError("upload or record the speech (audio)")
        backend = str(given.get("backend") or "viseme")
        if backend not in self.knobs:
            raise InputError(f"unknown backend {backend!r}; choose one of: {', '.join(self.backends)}")
        reason = self.available.reason(backend)
        if reason is not None and reason.startswith("unavailable"):
            raise InputError(f"backend {backend} is {reason}")
        kind = "image" if is_image(source) else "video"
        checks = [("audio", audio, "an audio file: upload speech (wav, mp3, m4a, flac, ogg)")]
        if kind == "video":
            checks.append(("video", source, "an image or a video: upload a portrait (jpg, png) or a video (mp4, mov, mkv)"))
        limit = float(self.cfg.max_duration)
        for name, path, what in checks:
            seconds = media_duration(path, what)
            if seconds > limit:
                raise InputError(
                    f"the {name} is {seconds:.0f} s long; this server takes at most {limit:g} s (ui.max_duration)"
                )
        overrides = self._overrides(backend, given)
        output = work / f"{Path(audio).stem}_{backend}.mp4"
        return self.pipelines.get(backend, overrides).pipeline.run(
            audio=audio,
            output=output,
            text=(given.get("text") or "").strip() or None,
            reporter=PageReporter(progress),
            **{kind: source},
        )

    def _overrides(self, backend: str, given: dict[str, Any]) -> dict[str, Any]:
        overrides: dict[str, Any] = {
            "interpolator": given.get("interpolator") or "none",
            "output.crf": int(given.get("crf") if given.get("crf") is not None else 18),
            "output.preset": given.get("preset") or "veryfast",
        }
        select = given.get("face_select") or FaceSelect.largest.value
        overrides["face.select"] = select
        if select == FaceSelect.index.value:
            overrides["face.index"] = int(given.get("face_index") or 0)
        if select == FaceSelect.point.value:
            overrides["face.point"] = parse_point(given.get("face_point"))
        for knob in self.knobs[backend]:
            value = knob.value(given.get(knob.param))
            if value is not None:
                overrides[knob.key] = value
        return overrides

    # -- the page -----------------------------------------------------------------------------

    def source_preview(self, source: str | None):
        """The portrait, or the video's first frame, to click the face on."""
        if not source:
            return None
        try:
            if is_image(source):
                from lipsync.media.video import load_image

                return load_image(source)
            from lipsync.media.video import VideoSource

            with _closing(VideoSource(source, 25.0)) as video:
                return video.read([0])[0]
        except LipsyncError as err:
            gr.Warning(str(err))
            return None

    def blocks(self) -> gr.Blocks:
        with gr.Blocks(title="lipsync", analytics_enabled=False, delete_cache=(600, 3600)) as page:
            gr.Markdown("# lipsync\nSpeech to talking-head video: a portrait or a video, plus the speech.")
            with gr.Row():
                with gr.Column():
                    source = gr.File(label="Portrait (image) or video", elem_id="source")
                    preview = gr.Image(label="Click the face to drive (when there are several)",
                                       interactive=False, elem_id="preview", height=240)
                    audio = gr.Audio(label="Speech", sources=["upload", "microphone"], type="filepath",
                                     elem_id="audio")
                    text = gr.Textbox(label="Transcript (optional: sharper timing)", lines=2)
                    backend = gr.Dropdown(choices=self.backends, value="viseme", label="Backend", elem_id="backend")
                    status = gr.Markdown(self.available.markdown(), elem_id="availability")
                    groups, knob_inputs = {}, []
                    for name in self.backends:
                        with gr.Group(visible=name == "viseme") as group:
                            for knob in self.knobs[name]:
                                knob_inputs.append(knob.component())
                        groups[name] = group
                    with gr.Accordion("Face, frames and quality", open=False):
                        face_select = gr.Radio([s.value for s in FaceSelect], value="largest", label="Face")
                        face_index = gr.Number(value=0, precision=0, minimum=0, label="face index (from the left)")
                        face_point = gr.Textbox(label="face point x, y (set by clicking the preview)")
                        interpolator = gr.Dropdown(options("interpolator"), value="none", label="Interpolator")
                        crf = gr.Slider(0, 51, value=18, step=1, label="quality (x264 crf: lower is better)")
                        preset = gr.Dropdown(list(X264_PRESETS), value="veryfast", label="encoder preset")
                    run = gr.Button("Generate", variant="primary", elem_id="generate")
                with gr.Column():
                    result = gr.Video(label="Result", elem_id="result", buttons=["download"])
                    summary = gr.Markdown(label="summary", elem_id="summary")
            gr.Examples(self._examples(), inputs=[source, audio], label="Try a sample")

            inputs = [source, audio, text, backend, face_select, face_index, face_point,
                      interpolator, crf, preset] + knob_inputs
            run_fn = self.run
            handler = _named(run_fn, [*FIXED_PARAMS] + [k.param for ks in self.knobs.values() for k in ks], inputs)
            run.click(handler, inputs=inputs, outputs=[result, summary], api_name="generate")
            backend.change(lambda name: [gr.update(visible=name == other) for other in groups],
                           inputs=backend, outputs=list(groups.values()), api_visibility="private")
            source.change(self.source_preview, inputs=source, outputs=preview, api_visibility="private")
            preview.select(_clicked_point, outputs=[face_select, face_point], api_visibility="private")
            page.load(self._availability, outputs=status, api_visibility="private")
        return page

    def _availability(self) -> str:
        self.available.wait(timeout=60)
        return self.available.markdown()

    def _examples(self) -> list[list[str]]:
        """The bundled samples, copied into the app's folder (Gradio serves files from there)."""
        from PIL import Image

        from lipsync.media.video import bundled_image

        samples = self.root / "samples"
        samples.mkdir(exist_ok=True)
        portrait = samples / "astronaut.png"
        Image.fromarray(bundled_image("astronaut")).save(portrait)
        speech = data_dir("assets") / "speech.wav"
        if not speech.is_file():
            return []
        shutil.copy(speech, samples / speech.name)
        return [[str(portrait), str(samples / speech.name)]]


def parse_point(text: Any) -> list[float]:
    try:
        x, y = (float(v) for v in str(text).replace("[", "").replace("]", "").split(","))
    except ValueError:
        raise InputError(f"face point must be 'x, y' in pixels, got {text!r}; click the face in the preview") from None
    return [x, y]


def _clicked_point(event: gr.SelectData) -> tuple[str, str]:
    x, y = event.index
    return FaceSelect.point.value, f"{x}, {y}"


@contextmanager
def _closing(video):
    try:
        yield video
    finally:
        video.close()


def _named(fn, names: list[str], components: list) -> Any:
    """``fn(*values)`` with a signature naming each input, so the HTTP API has named parameters
    whose defaults are the page's initial values."""

    def handler(*values: Any, progress: gr.Progress = gr.Progress()):
        yield from fn(*values, progress=progress)

    params = [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=_initial(component))
        for name, component in zip(names, components)
    ]
    params.append(inspect.Parameter("progress", inspect.Parameter.KEYWORD_ONLY, default=gr.Progress()))
    handler.__signature__ = inspect.Signature(params)
    handler.__name__ = "generate"
    return handler


def _initial(component) -> Any:
    value = getattr(component, "value", None)
    return None if isinstance(value, dict) else value


def serve(cfg, root: Path, block: bool = True) -> tuple[gr.Blocks, str]:
    """Start the app on ``cfg.host:cfg.port`` with ``root`` as its temporary folder (Gradio's
    cache too: GRADIO_TEMP_DIR must point inside it before gradio is imported); the folder is
    removed when the app stops."""
    app = App(cfg, root)
    page = app.blocks()
    page.queue(default_concurrency_limit=int(cfg.concurrency), max_size=int(cfg.queue_size))
    _, url, _ = page.launch(
        server_name=str(cfg.host),
        server_port=int(cfg.port) or None,
        share=bool(cfg.share),
        max_file_size=f"{int(cfg.max_upload_mb)}mb",
        ssr_mode=False,
        prevent_thread_lock=True,
        quiet=True,
        footer_links=["api"],
    )
    print(f"lipsync-ui: serving on {url} (API: {url.rstrip('/')}/?view=api; Ctrl-C to stop)", flush=True)
    if block:
        try:
            page.block_thread()
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return page, url
