"""SyncTalk_2D: a person-specific 328 px mouth-inpainting U-Net driven by per-frame audio features.

A user records a few minutes of one person talking, prepares the recording once
(``tools/synctalk2d_prepare.py``: 25 fps frames, landmarks, audio features) and trains a SyncNet
and then the U-Net on it (``tools/synctalk2d_train.py``); afterwards any audio drives that person.
"""
