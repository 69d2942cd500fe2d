"""The web app (lipsync-ui), tested as a person and as an API client would use it: one server for
the module, started as the console command does, driven by headless Chromium and gradio_client."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import av
import pytest

from tests.conftest import ROOT

SPEECH = ROOT / "assets" / "speech.wav"
SPEECH_SECONDS = 7.56  # 189 frames at 25 fps


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(args: list[str], tmp: Path) -> subprocess.Popen:
    env = dict(os.environ, TMPDIR=str(tmp), LIPSYNC_CACHE=str(tmp / "no-weights"), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "lipsync.ui.cli", *args], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app on a free loopback port, with its temporary folder under the test's tmp dir."""
    tmp = tmp_path_factory.mktemp("ui")
    port = _free_port()
    proc = _start([f"ui.port={port}", "ui.max_duration=60", "ui.max_upload_mb=2"], tmp)
    deadline = time.monotonic() + 300
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        lines.append(line)
        if "serving on" in line:
            break
    else:
        proc.kill()
    if proc.poll() is not None:
        pytest.fail("lipsync-ui did not start:\n" + "".join(lines))
    roots = list(tmp.glob("lipsync-ui-*"))
    assert len(roots) == 1, roots
    yield {"url": f"http://127.0.0.1:{port}/", "root": roots[0], "tmp": tmp, "proc": proc}
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


@pytest.fixture(scope="module")
def portrait(tmp_path_factory) -> Path:
    from PIL import Image

    from lipsync.media.video import bundled_image

    path = tmp_path_factory.mktemp("portrait") / "astronaut.png"
    Image.fromarray(bundled_image("astronaut")).save(path)
    return path


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        reason = "Debian's chromium and chromium-driver are not installed (make setup installs them)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1400,1800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


def _upload(driver, elem_id: str, path: Path) -> None:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=file]")
    field.send_keys(str(path))


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _open_page(driver, url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url)
    _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#generate"), 120, "the page")


def _video_facts(path: Path) -> tuple[float, int]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
    with av.open(str(path)) as container:
        audio = len(container.streams.audio)
    return frames / 25.0, audio


def test_browser_renders_the_demo_and_downloads_it(server, browser, portrait, tmp_path):
    from selenium.webdriver.common.by import By

    _open_page(browser, server["url"])
    _upload(browser, "source", portrait)
    _upload(browser, "audio", SPEECH)
    # The preview shows the portrait once the upload is in (the face can be clicked there).
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#preview img"), 120, "the preview")
    browser.find_element(By.CSS_SELECTOR, "#generate").click()
    src = _wait(
        lambda: next((v.get_attribute("src") for v in browser.find_elements(By.CSS_SELECTOR, "#result video")
                      if v.get_attribute("src")), None),
        600, "the result video",
    )
    _wait(lambda: "real time" in browser.find_element(By.CSS_SELECTOR, "#summary").text, 60, "the summary")
    browser.save_screenshot(str(tmp_path / "finished.png"))
    assert (tmp_path / "finished.png").stat().st_size > 10_000
    downloaded = tmp_path / "result.mp4"
    urllib.request.urlretrieve(src, downloaded)
    seconds, audio_tracks = _video_facts(downloaded)
    assert abs(seconds - SPEECH_SECONDS) < 0.1
    assert audio_tracks == 1
    summary = browser.find_element(By.CSS_SELECTOR, "#summary").text
    assert "189 frames" in summary
    # Each request's folder is gone once its result is handed over.
    assert not any((server["root"] / "jobs").iterdir())


def test_browser_shows_bad_input_and_keeps_serving(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    not_media = tmp_path / "notes.txt"
    not_media.write_text("this is not a picture\n")
    _open_page(browser, server["url"])
    _upload(browser, "source", not_media)
    _upload(browser, "audio", SPEECH)
    browser.find_element(By.CSS_SELECTOR, "#generate").click()
    _wait(lambda: "notes.txt is not an image or a video" in browser.find_element(By.TAG_NAME, "body").text,
          120, "the error message")
    browser.save_screenshot(str(tmp_path / "error.png"))
    assert server["proc"].poll() is None
    assert not any((server["root"] / "jobs").iterdir())


def test_api_client_renders_and_reports_errors(server, portrait, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(server["url"], download_files=str(tmp_path), verbose=False)
    video, summary = client.predict(
        source=handle_file(str(portrait)), audio=handle_file(str(SPEECH)),
        viseme_mouth_intensity=1.2, api_name="/generate",
    )
    seconds, audio_tracks = _video_facts(Path(video))
    assert abs(seconds - SPEECH_SECONDS) < 0.1 and audio_tracks == 1
    assert "189 frames" in summary
    # A backend whose checkpoints are absent: the reason and the command that fetches them.
    with pytest.raises(AppError, match="lipsync-weights download"):
        client.predict(source=handle_file(str(portrait)), audio=handle_file(str(SPEECH)),
                       backend="sonic", api_name="/generate")
    with pytest.raises(AppError, match="greater than maximum value 3"):
        client.predict(source=handle_file(str(portrait)), audio=handle_file(str(SPEECH)),
                       viseme_mouth_intensity=99, api_name="/generate")
    with pytest.raises(AppError, match="face point must be 'x, y'"):
        client.predict(source=handle_file(str(portrait)), audio=handle_file(str(SPEECH)),
                       face_select="point", face_point="the left one", api_name="/generate")
    assert server["proc"].poll() is None


def test_api_refuses_what_the_server_does_not_take(server, portrait, tmp_path):
    import numpy as np
    import soundfile
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError
    from PIL import Image

    client = Client(server["url"], download_files=str(tmp_path), verbose=False)
    long_speech = tmp_path / "long.wav"  # 61 s against ui.max_duration=60, under the upload limit
    soundfile.write(long_speech, np.zeros(61 * 8000, np.int16), 8000, subtype="PCM_16")
    with pytest.raises(AppError, match=r"the audio is 61 s long; this server takes at most 60 s \(ui.max_duration\)"):
        client.predict(source=handle_file(str(portrait)), audio=handle_file(str(long_speech)), api_name="/generate")
    big = tmp_path / "big.png"  # over ui.max_upload_mb=2
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (1200, 1200, 3), np.uint8)).save(big)
    assert big.stat().st_size > 2 * 1024 * 1024
    with pytest.raises(Exception, match="(?i)size"):
        client.predict(source=handle_file(str(big)), audio=handle_file(str(SPEECH)), api_name="/generate")
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((256, 256, 3), 200, np.uint8)).save(blank)
    with pytest.raises(AppError, match="no face found"):
        client.predict(source=handle_file(str(blank)), audio=handle_file(str(SPEECH)), api_name="/generate")
    assert server["proc"].poll() is None
    assert not any((server["root"] / "jobs").iterdir())


def test_server_leaves_nothing_behind(server):
    """Stopping the app (SIGTERM) removes its folder, uploads and results included. Runs last."""
    proc = server["proc"]
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert not list(server["tmp"].glob("lipsync-ui-*"))


@pytest.mark.parametrize("option", ["ui.port=70000", "ui.concurrency=0", "ui.nope=1"])
def test_bad_options_exit_2_with_one_line(option, tmp_path):
    proc = _start([option], tmp_path)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lipsync-ui: error:"), out


def test_page_options_follow_the_backend_schemas():
    from lipsync.ui.app import backend_knobs

    viseme = {knob.key: knob for knob in backend_knobs("viseme")}
    assert viseme["mouth_intensity"].default == 1.0 and viseme["mouth_intensity"].limits == (0.0, 3.0)
    latentsync = {knob.key: knob for knob in backend_knobs("latentsync")}
    assert latentsync["version"].limits == ("1.5", "1.6") and latentsync["version"].default == "1.6"
    assert latentsync["deepcache"].default is False
    sonic = {knob.key: knob for knob in backend_knobs("sonic")}
    assert sonic["steps"].default == 25 and sonic["steps"].limits == (1, 1000)


def test_declared_limits_are_the_checks_validation_runs():
    from lipsync.config import OutputConfig, X264_PRESETS, declared_limits

    limits = declared_limits(OutputConfig)
    assert limits["output.crf"] == (0, 51) and limits["output.preset"] == X264_PRESETS
    with pytest.raises(ValueError, match="output.preset must be one of"):
        OutputConfig(preset="warp")
