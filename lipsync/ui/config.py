"""Schema of the web app's config (``lipsync-ui``, conf/ui.yaml). Light: no gradio import."""
from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from lipsync.config import check_range


@dataclass
class UIConfig:
    host: str = "127.0.0.1"  # loopback only; 0.0.0.0 serves every network the machine is on
    port: int = 7860  # 0: a free port chosen by the system
    share: bool = False  # also publish a temporary public gradio.live link (needs internet)
    concurrency: int = 1  # generations at once; further requests wait in the queue
    queue_size: int = 16  # requests that may wait; more are turned away with a message
    max_upload_mb: int = 200  # larger uploads are refused in the page
    max_duration: float = 300.0  # seconds of audio or video accepted per request
    pipelines: int = 2  # loaded pipelines kept for reuse (networks stay in memory)

    def __post_init__(self) -> None:
        check_range("ui.port", self.port, 0, 65535)
        check_range("ui.concurrency", self.concurrency, 1, 64)
        check_range("ui.queue_size", self.queue_size, 1, 10_000)
        check_range("ui.max_upload_mb", self.max_upload_mb, 1, 100_000)
        check_range("ui.max_duration", self.max_duration, 1.0, 86_400.0)
        check_range("ui.pipelines", self.pipelines, 1, 16)


@dataclass
class UIAppConfig:
    ui: UIConfig = field(default_factory=UIConfig)
    verbose: bool = False  # tracebacks instead of one-line errors


ConfigStore.instance().store(name="ui_schema", node=UIAppConfig)
