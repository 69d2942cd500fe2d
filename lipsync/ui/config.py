"""Schema of the web app's config (``lipsync-ui``, conf/ui.yaml). Light: no gradio import."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from hydra.core.config_store import ConfigStore

from lipsync.config import Checked, within


@dataclass
class UIConfig(Checked):
    option_path: ClassVar[str] = "ui"
    host: str = "127.0.0.1"  # loopback only; 0.0.0.0 serves every network the machine is on
    port: int = within(7860, 0, 65535)  # 0: a free port chosen by the system
    share: bool = False  # also publish a temporary public gradio.live link (needs internet)
    concurrency: int = within(1, 1, 64)  # generations at once; further requests wait in the queue
    queue_size: int = within(16, 1, 10_000)  # requests that may wait; more are turned away with a message
    max_upload_mb: int = within(200, 1, 100_000)  # larger uploads are refused in the page
    max_duration: float = within(300.0, 1.0, 86_400.0)  # seconds of audio or video accepted per request
    pipelines: int = within(2, 1, 16)  # loaded pipelines kept for reuse (networks stay in memory)


@dataclass
class UIAppConfig:
    ui: UIConfig = field(default_factory=UIConfig)
    verbose: bool = False  # tracebacks instead of one-line errors


ConfigStore.instance().store(name="ui_schema", node=UIAppConfig)
