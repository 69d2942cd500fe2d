"""The weights layer: registry, cache lookups, hashes, safe loading, strict layouts, the CLI."""
from __future__ import annotations

import hashlib
import importlib
import os
import subprocess
import sys

import pytest
import torch

from lipsync import weights
from lipsync.errors import InputError, MissingWeightsError, WeightsError
from lipsync.weights.cli import main as weights_cli

registry_module = importlib.import_module("lipsync.weights.registry")


@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    folder = tmp_path / "registry"
    folder.mkdir()
    payload = b"not really a checkpoint"
    (folder / "demo.yaml").write_text(
        "demo.model:\n"
        "  repo: someone/demo\n"
        "  revision: 0123abc\n"
        "  file: ckpt/model.bin\n"
        f"  size: {len(payload)}\n"
        f"  sha256: {hashlib.sha256(payload).hexdigest()}\n"
        "  license: MIT\n"
        "demo.other:\n"
        "  repo: someone/demo\n"
        "  file: other.pt\n"
    )
    monkeypatch.setattr(registry_module, "data_dir", lambda name: folder)
    registry_module.registry.cache_clear()
    yield payload
    registry_module.registry.cache_clear()


def test_missing_files_are_named_with_the_fetch_command(fake_registry):
    with pytest.raises(MissingWeightsError) as err:
        weights.require(["demo.model", "demo.other"])
    text = str(err.value)
    assert "someone/demo@0123abc:ckpt/model.bin" in text and "other.pt" in text
    assert "lipsync-weights download demo.model demo.other" in text
    assert "\n" not in text


def test_cached_file_is_found_and_verified(fake_registry):
    entry = weights.spec("demo.model")
    entry.cache_path.parent.mkdir(parents=True)
    entry.cache_path.write_bytes(fake_registry)
    assert weights.require(["demo.model"])["demo.model"] == entry.cache_path
    weights.verify(entry, entry.cache_path)
    entry.cache_path.write_bytes(b"x" * len(fake_registry))
    with pytest.raises(WeightsError, match="sha256"):
        weights.verify(entry, entry.cache_path)
    entry.cache_path.write_bytes(b"short")
    with pytest.raises(WeightsError, match="bytes"):
        weights.verify(entry, entry.cache_path)


def test_user_override_path(fake_registry, tmp_path):
    local = tmp_path / "mine.bin"
    local.write_bytes(b"1")
    assert weights.require(["demo.model"], {"demo.model": local})["demo.model"] == local
    with pytest.raises(InputError, match="not found"):
        weights.resolve("demo.model", tmp_path / "nope.bin")


def test_groups_select_their_files(fake_registry):
    assert [s.name for s in weights.select(["demo"])] == ["demo.model", "demo.other"]
    with pytest.raises(Exception, match="no checkpoint or group"):
        weights.select(["nothing"])


def test_download_without_network_fails_fast_with_one_line(fake_registry, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingWeightsError, match="cannot download someone/demo"):
        weights.download(weights.spec("demo.other"))


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(2), "payload": _Exploit(str(marker))}, evil)
    with pytest.raises(WeightsError, match="refusing to load"):
        weights.load_state_dict(evil)
    assert not marker.exists()


def test_state_dict_containers_and_safetensors(tmp_path):
    from safetensors.torch import save_file

    state = {"a.weight": torch.ones(2, 3), "a.bias": torch.zeros(2)}
    torch.save({"state_dict": state, "global_step": 7}, tmp_path / "wrapped.pt")
    assert set(weights.load_state_dict(tmp_path / "wrapped.pt")) == set(state)
    torch.save({"dims": {"n": 1}, "model_state_dict": state}, tmp_path / "whisper.pt")
    assert set(weights.load_state_dict(tmp_path / "whisper.pt", container="model_state_dict")) == set(state)
    with pytest.raises(WeightsError, match="no 'ema'"):
        weights.load_state_dict(tmp_path / "whisper.pt", container="ema")
    save_file(state, str(tmp_path / "plain.safetensors"))
    assert torch.equal(weights.load_state_dict(tmp_path / "plain.safetensors")["a.weight"], state["a.weight"])
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="cannot read"):
        weights.load_state_dict(tmp_path / "junk.safetensors")


def test_strict_loading_reports_what_does_not_fit():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
    good = {k: torch.randn(v.shape) for k, v in model.state_dict().items()}
    weights.load_into(model, {f"module.{k}": v for k, v in good.items()}, remap=lambda s: weights.strip_prefix(s, "module."))
    assert torch.equal(model[0].weight, good["0.weight"])
    bad = dict(good, **{"0.weight": torch.zeros(5, 3), "extra": torch.zeros(1)})
    del bad["2.bias"]
    with pytest.raises(WeightsError) as err:
        weights.load_into(model, bad, source="ckpt.pt")
    text = str(err.value)
    assert "missing 2.bias" in text and "0.weight: shape (5, 3) != (2, 3)" in text and "unexpected extra" in text


def test_meta_models_take_manifest_layouts():
    with torch.device("meta"):
        model = torch.nn.Linear(4, 3)
    manifest = {"keys": {"weight": [3, 4], "bias": [3]}}
    assert weights.manifest_problems(model, manifest) == []
    assert weights.manifest_problems(model, {"keys": {"weight": [3, 5]}}) == ["weight: shape (3, 5) != (3, 4)", "missing bias"]
    weights.load_into(model, weights.meta_state_dict(manifest["keys"]))


def test_cli_lists_and_reports_errors(fake_registry, capsys, monkeypatch):
    assert weights_cli(["list"]) == 0
    assert "demo.model" in capsys.readouterr().out
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert weights_cli(["download", "demo.other"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lipsync-weights: error: cannot download") and err.count("\n") == 1
    assert weights_cli(["-v", "download", "demo.other"]) == 2  # verbose: the traceback too, the same exit code
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "Traceback (most recent call last):" and err[-1].startswith("lipsync-weights: error: cannot download")
    assert weights_cli(["download", "nothing"]) == 2


def test_cli_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "lipsync.weights.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "download" in out.stdout


def test_dead_network_fails_at_once_without_hub_retries(fake_registry, monkeypatch):
    import socket

    import huggingface_hub

    def unreachable(*args, **kwargs):
        raise OSError("Name or service not known")

    def hub_called(*args, **kwargs):  # the hub client would retry with back-off for ~25 s
        raise AssertionError("the hub client must not be tried on a dead network")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub_called)
    with pytest.raises(MissingWeightsError, match="huggingface.co is unreachable"):
        weights.download(weights.spec("demo.other"))


# -- the lock: trust on first use for files with no published sha256 ------------------------------


def _cache(entry, payload: bytes, later: int = 0):
    """Put ``payload`` in ``entry``'s cache file; ``later`` seconds on its mtime mark a file that
    changed after an earlier use (a rewrite within one clock tick keeps the mtime)."""
    import os

    entry.cache_path.parent.mkdir(parents=True, exist_ok=True)
    entry.cache_path.write_bytes(payload)
    if later:
        stat = entry.cache_path.stat()
        os.utime(entry.cache_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + later * 10**9))


def test_a_file_without_published_hash_is_locked_on_first_use_and_checked_after(fake_registry, caplog):
    from lipsync.weights.lock import lock_path, read_lock

    entry = weights.spec("demo.other")
    _cache(entry, b"first download")
    assert weights.require(["demo.other"])["demo.other"] == entry.cache_path
    assert "recorded its hash" in caplog.text  # said, not silent
    assert read_lock()["demo.other"] == {"source": entry.source, "size": 14,
                                         "sha256": hashlib.sha256(b"first download").hexdigest()}
    assert lock_path().parent == entry.cache_path.parents[2]  # beside the cache
    umask = os.umask(0)
    os.umask(umask)
    assert lock_path().stat().st_mode & 0o777 == 0o666 & ~umask  # like any file the user makes, not 0600
    assert weights.resolve("demo.other") == entry.cache_path  # unchanged: still fine
    _cache(entry, b"first d0wnload", later=1)  # same size, other bytes
    for use in (lambda: weights.require(["demo.other"]), lambda: weights.resolve("demo.other")):
        with pytest.raises(WeightsError, match="does not match the sha256 recorded for demo.other") as err:
            use()
        assert err.value.exit_code == 2 and "\n" not in str(err.value)


def test_a_published_hash_is_checked_at_every_use(fake_registry):
    entry = weights.spec("demo.model")
    _cache(entry, fake_registry)
    weights.require(["demo.model"])
    _cache(entry, b"x" * len(fake_registry), later=1)
    with pytest.raises(WeightsError, match="does not match the sha256 of demo.model"):
        weights.require(["demo.model"])


def test_verify_names_unhashed_entries_and_whether_they_are_locked(fake_registry, capsys):
    entry = weights.spec("demo.other")
    assert weights_cli(["verify"]) == 0
    assert "demo.other: not cached (no published sha256; not locked)" in capsys.readouterr().out
    _cache(entry, b"weights")
    assert weights_cli(["verify"]) == 0
    out = capsys.readouterr().out
    assert "demo.other: NOT VERIFIED: no published sha256 and not locked" in out
    assert "demo.model: not cached\n" in out
    assert weights_cli(["verify"]) == 0 and "NOT VERIFIED" in capsys.readouterr().out  # verify records nothing
    assert weights_cli(["lock"]) == 0
    assert "demo.other: locked now" in capsys.readouterr().out
    assert weights_cli(["verify", "demo.other"]) == 0
    assert "demo.other: ok (sha256 locked on first use; none published)" in capsys.readouterr().out
    _cache(entry, b"w3ights", later=1)
    assert weights_cli(["verify"]) == 2
    assert "demo.other: FAILED: " in capsys.readouterr().out
    assert weights_cli(["lock", "demo.other"]) == 2  # a plain lock never overwrites a record
    capsys.readouterr()
    assert weights_cli(["lock", "--force", "demo.other"]) == 0
    assert weights_cli(["verify", "demo.other"]) == 0
    assert "ok (sha256 locked" in capsys.readouterr().out


def test_the_lock_file_can_live_elsewhere_and_a_re_pinned_entry_is_not_locked(fake_registry, tmp_path, monkeypatch, capsys):
    from lipsync.weights.lock import LOCK_ENV, read_lock

    entry = weights.spec("demo.other")
    _cache(entry, b"weights")
    lock = tmp_path / "project" / "weights.lock"
    assert weights_cli(["--lock", str(lock), "lock"]) == 0
    monkeypatch.setenv(LOCK_ENV, str(lock))
    assert set(read_lock()) == {"demo.other"} and lock.read_text().startswith("# lipsync-weights lock")
    repinned = weights.WeightSpec(name="demo.other", repo="someone/demo", file="other.pt", revision="fedcba9")
    assert weights.verify(repinned, entry.cache_path, record_first_use=False) == "unverified"


def test_an_unwritable_lock_is_one_line_naming_the_variable(fake_registry, tmp_path, monkeypatch):
    from lipsync.weights.lock import LOCK_ENV

    entry = weights.spec("demo.other")
    _cache(entry, b"weights")
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(LOCK_ENV, str(tmp_path / "a-file" / "weights.lock"))
    with pytest.raises(WeightsError, match=f"cannot write the weights lock .*; set {LOCK_ENV} to a writable file"):
        weights.require(["demo.other"])


def test_a_download_without_published_hash_is_locked_and_a_changed_upload_refused(tmp_path):
    from lipsync.weights.lock import locked

    source = tmp_path / "published.bin"
    source.write_bytes(b"first upload")
    entry = weights.WeightSpec(name="x.y", repo="owner/repo", file="file.bin", url=source.as_uri())
    weights.download(entry)
    assert locked(entry)["sha256"] == hashlib.sha256(b"first upload").hexdigest()
    source.write_bytes(b"other upload")  # the publisher changed the file behind the same name
    with pytest.raises(WeightsError, match="recorded for x.y"):
        weights.download(entry, force=True)
