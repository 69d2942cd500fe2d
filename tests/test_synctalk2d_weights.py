"""SyncTalk2D's registered files, downloads from a direct URL, and the HuBERT encoder (a tiny
random HuBERT stands in for HuBERT-Large)."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from lipsync import weights
from lipsync.audio.config import AVEEncoderConfig, HubertEncoderConfig
from lipsync.audio.hubert import hubert_state_from_checkpoint, normalise
from lipsync.errors import InputError, MissingWeightsError
from lipsync.registry import construct


def test_registry_lists_the_backend_files_and_the_core_encoders_own_theirs():
    assert {s.name for s in weights.select(["synctalk2d"])} == {"synctalk2d.vgg19"}
    assert {s.name for s in weights.select(["ave", "hubert"])} == {
        "ave.encoder", "hubert.large_ls960_ft", "hubert.large_ls960_ft_config"}
    ave = weights.spec("ave.encoder")
    assert ave.url and ave.revision in ave.url and ave.source == ave.url


@pytest.mark.parametrize("old, new", [("synctalk2d.ave_encoder", "ave.encoder"), ("synctalk2d.hubert", "hubert.large_ls960_ft")])
def test_an_old_backend_name_says_its_new_name(old, new):
    from lipsync.errors import ConfigError

    for lookup in (weights.spec, lambda name: weights.select([name])):
        with pytest.raises(ConfigError, match=f"'{old}' is now called '{new}'"):
            lookup(old)


def test_missing_ave_encoder_names_the_download_command():
    with pytest.raises(MissingWeightsError, match="lipsync-weights download ave.encoder"):
        construct(AVEEncoderConfig).check_weights()


def test_the_encoders_require_the_entry_their_config_names(monkeypatch):
    asked = []
    monkeypatch.setattr(weights, "require", lambda names, overrides=None: asked.append(names) or {n: n for n in names})
    construct(AVEEncoderConfig, weights="ave.other").check_weights()
    construct(HubertEncoderConfig, weights="hubert.other").check_weights()
    assert asked == [["ave.other"], ["hubert.other_config", "hubert.other"]]


def test_url_entries_download_into_the_cache(tmp_path):
    source = tmp_path / "published.pth"
    torch.save({"w": torch.ones(2)}, source)
    entry = weights.WeightSpec(name="x.y", repo="owner/repo", file="dir/file.pth", url=source.as_uri(), size=source.stat().st_size)
    path = weights.download(entry)
    assert path == entry.cache_path and path.read_bytes() == source.read_bytes()
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # readable by whoever shares the cache, as the umask says
    broken = weights.WeightSpec(name="x.z", repo="owner/repo", file="gone.pth", url=(tmp_path / "gone").as_uri())
    with pytest.raises(MissingWeightsError, match="cannot download"):
        weights.download(broken)
    assert not list(broken.cache_path.parent.glob(".gone.pth.*"))  # no partial file left behind


@pytest.fixture(scope="module")
def tiny_hubert(tmp_path_factory):
    """A tiny HubertForCTC saved the way the hub file is: a .bin with old weight-norm names."""
    from transformers import HubertConfig, HubertForCTC

    torch.manual_seed(0)
    config = HubertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16,) * 7, feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True,
        vocab_size=32, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
    )  # fmt: skip
    model = HubertForCTC(config).eval()
    folder = tmp_path_factory.mktemp("hubert")
    config.to_json_file(str(folder / "config.json"))
    renamed = {
        k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v"): v
        for k, v in model.state_dict().items()
    }
    torch.save(renamed, folder / "pytorch_model.bin")
    return model.hubert, folder


def test_hubert_state_remap():
    state = {"hubert.encoder.pos_conv_embed.conv.weight_g": 1, "lm_head.weight": 2, "hubert.masked_spec_embed": 3}
    assert hubert_state_from_checkpoint(state) == {"encoder.pos_conv_embed.conv.parametrizations.weight.original0": 1, "masked_spec_embed": 3}


def test_hubert_frames_match_the_whole_clip_model(tiny_hubert):
    reference, folder = tiny_hubert
    encoder = construct(HubertEncoderConfig, model_dir=str(folder))
    encoder.load("cpu")
    audio = np.random.default_rng(0).standard_normal(16000 * 2 + 555).astype(np.float32) * 0.1
    features = encoder.encode(audio, 16000)
    with torch.inference_mode():
        hidden = reference(torch.from_numpy(normalise(audio))[None]).last_hidden_state[0].numpy()
    expected_vectors = (len(audio) - 80) // 320
    assert features.encoder == "hubert" and features.values.shape == (expected_vectors // 2, 2, 32)
    np.testing.assert_allclose(features.values.reshape(-1, 32), hidden[: expected_vectors // 2 * 2], atol=1e-5)
    with pytest.raises(InputError, match="HuBERT needs at least"):
        encoder.encode(audio[:500], 16000)


def test_hubert_pieces_cover_long_audio(tiny_hubert):
    _, folder = tiny_hubert
    encoder = construct(HubertEncoderConfig, model_dir=str(folder), chunk_seconds=0.5)
    encoder.load("cpu")
    audio = np.random.default_rng(1).standard_normal(16000 * 2 + 100).astype(np.float32)
    assert len(encoder.encode(audio, 16000)) == ((len(audio) - 80) // 320) // 2
    with pytest.raises(InputError, match="needs config.json"):
        construct(HubertEncoderConfig, model_dir=str(folder / "nothing")).check_weights()
