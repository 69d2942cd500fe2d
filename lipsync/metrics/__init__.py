"""Lip-sync metrics researchers compare models with: a weight-free sync score (mouth opening vs
speech), LSE-D and LSE-C (SyncNet v2 distances), and picture quality against a reference.

    from lipsync.metrics import lse_scores, mouth_sync_scores
    print(mouth_sync_scores("generated.mp4").correlation)   # needs no download
    result = lse_scores("generated.mp4")            # the registered syncnet_v2.model, face crops
    print(result.lse_d, result.lse_c, result.offset)
"""
from lipsync.metrics.lse import LseResult, lse_scores
from lipsync.metrics.lse_crop import crop_face
from lipsync.metrics.lse_scoring import SyncScores, sync_scores
from lipsync.metrics.mfcc import MfccConfig, speech_mfcc
from lipsync.metrics.mouth_sync import MouthSync, mouth_sync_scores
from lipsync.metrics.syncnet import SyncNet, SyncNetConfig, load_syncnet, published_remap

__all__ = [
    "LseResult",
    "MfccConfig",
    "MouthSync",
    "SyncNet",
    "SyncNetConfig",
    "SyncScores",
    "crop_face",
    "load_syncnet",
    "lse_scores",
    "mouth_sync_scores",
    "published_remap",
    "speech_mfcc",
    "sync_scores",
]
