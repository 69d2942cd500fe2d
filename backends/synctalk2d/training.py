"""Training a person: first the SyncNet (lip-sync expert), then the U-Net, as upstream's
``syncnet_328.py`` and ``train_328.py`` with their defects fixed:

* the SyncNet sees off-sync pairs too (upstream: in-sync pairs only, so "always in sync" was a
  perfect answer) and its gradients are zeroed every step (upstream accumulated them forever);
* crops are resized with the interpolation inference uses (upstream's training passed
  ``cv2.INTER_AREA`` as ``dst`` and so resized bilinearly, inference bicubically);
* the sync probability is clamped into BCE's domain.

U-Net loss, as upstream: ``L1 + 0.01 * VGG perceptual + 10 * sync``; its input pairs a *random
other frame* of the person as reference with the masked current frame, the target being the
current frame. Adam, lr 1e-3. Each stage writes ``<out>/<stage>/last.pt`` (model, optimiser,
progress: a run resumes from it) and numbered checkpoints; the U-Net's ``<out>/unet/final.pth``
(or the latest numbered one) is what ``backend.checkpoint`` takes.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from backends.synctalk2d import geometry
from backends.synctalk2d.checkpoint import SYNCNET_FORMAT, UNET_FORMAT, load_syncnet, save_checkpoint
from backends.synctalk2d.features import unet_audio
from backends.synctalk2d.losses import PerceptualLoss, load_vgg, sync_loss
from backends.synctalk2d.networks import CELL, SyncNet328, UNet328
from backends.synctalk2d.person import PersonDataset
from lipsync.errors import ConfigError, InputError
from lipsync.progress import Reporter
from lipsync.resources import replacing

INTERPOLATIONS = {"cubic": cv2.INTER_CUBIC, "linear": cv2.INTER_LINEAR}


class PersonCrops(Dataset):
    """Inner crops and audio windows of a prepared person (frames with usable landmarks only)."""

    def __init__(self, person: PersonDataset, mode: str, interpolation: str = "cubic"):
        self.person = person
        self.mode = mode
        self.features = person.audio_features(mode)
        self.interpolation = INTERPOLATIONS[interpolation]
        count = min(len(person), len(self.features))
        self.frames = [i for i in range(count) if geometry.valid_box(geometry.crop_box(person.landmarks(i)), (person.height, person.width))]
        if len(self.frames) < 2:
            raise InputError(f"person dataset {person.root} has {len(self.frames)} usable frames; training needs at least 2")

    def __len__(self) -> int:
        return len(self.frames)

    def inner(self, frame: int) -> np.ndarray:
        box = geometry.crop_box(self.person.landmarks(frame))
        return geometry.crop(self.person.frame(frame), box, self.interpolation).inner

    def audio(self, frame: int) -> np.ndarray:
        return unet_audio(self.features, [frame], self.mode)[0]


def _chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0))


class SyncPairs(Dataset):
    """(face crop, audio window, label): in sync (1) or audio from a frame at least
    ``min_offset`` away (0), with probability ``negatives``."""

    def __init__(self, crops: PersonCrops, negatives: float, min_offset: int):
        self.crops, self.negatives, self.min_offset = crops, negatives, min_offset

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, index: int):
        frames = self.crops.frames
        frame = frames[index]
        reachable = max(frame - frames[0], frames[-1] - frame) >= self.min_offset
        audio_frame = frame
        if reachable and random.random() < self.negatives:
            while abs(audio_frame - frame) < self.min_offset:
                audio_frame = random.choice(frames)
        off_sync = audio_frame != frame
        face = _chw(self.crops.inner(frame))
        return face, torch.from_numpy(self.crops.audio(audio_frame)), torch.tensor([0.0 if off_sync else 1.0])


class InpaintingSamples(Dataset):
    """(6-channel input: random other frame + masked current frame, target crop, audio window)."""

    def __init__(self, crops: PersonCrops):
        self.crops = crops

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, index: int):
        frame = self.crops.frames[index]
        reference = self.crops.frames[random.randrange(len(self.crops))]
        target = self.crops.inner(frame)
        image = np.concatenate([self.crops.inner(reference), geometry.masked(target)], axis=-1)
        return _chw(image), _chw(target), torch.from_numpy(self.crops.audio(frame))


@dataclass
class StageResult:
    checkpoint: Path  # the model file to use
    losses: list[float] = field(default_factory=list)  # loss of every optimiser step, in order
    resumed_from: int = 0  # steps done before this run


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _worker_seed(worker: int) -> None:
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def _loader(dataset: Dataset, batch_size: int, workers: int, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset, batch_size=min(batch_size, len(dataset)), shuffle=True, drop_last=False, num_workers=workers,
        worker_init_fn=_worker_seed, generator=generator, persistent_workers=workers > 0,
    )  # fmt: skip


class _Stage:
    """Epoch/step bookkeeping, resumable state and checkpoints of one training stage."""

    def __init__(self, name: str, folder: Path, model, optimizer, cfg, fmt: str, resume: bool, reporter: Reporter):
        self.name, self.folder, self.model, self.optimizer = name, folder, model, optimizer
        self.cfg, self.fmt, self.reporter = cfg, fmt, reporter
        self.epoch, self.step, self.losses = 0, 0, []
        folder.mkdir(parents=True, exist_ok=True)
        last = folder / "last.pt"
        if resume and last.is_file():
            state = torch.load(str(last), map_location="cpu", weights_only=True)
            model.load_state_dict(state["state_dict"])
            optimizer.load_state_dict(state["optimizer"])
            self.epoch, self.step, self.losses = int(state["epoch"]), int(state["step"]), list(state["losses"])
            reporter.info(f"{name}: resuming after epoch {self.epoch} (step {self.step})")
        self.resumed_from = self.step

    @property
    def done(self) -> bool:
        limit = self.cfg.max_steps
        return self.epoch >= self.cfg.epochs or (limit is not None and self.step >= limit)

    def save_last(self) -> None:
        record = {
            "format": self.fmt, "state_dict": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch, "step": self.step, "losses": self.losses, "mode": self.model.mode,
        }  # fmt: skip
        with replacing(self.folder / "last.pt") as temp:
            torch.save(record, str(temp))

    def save(self, name: str) -> Path:
        return save_checkpoint(self.folder / name, self.model, self.fmt, epoch=self.epoch, step=self.step)

    def run(self, loader: DataLoader, train_step) -> StageResult:
        """Epochs of ``train_step(batch) -> loss`` until the epoch or step limit."""
        limit = self.cfg.max_steps
        total = min(self.cfg.epochs * len(loader), limit) if limit is not None else self.cfg.epochs * len(loader)
        with self.reporter.stage(f"training {self.name}", total=total) as bar:
            bar.advance(min(self.step, total))
            while not self.done:
                self.model.train()
                epoch_losses = []
                for batch in loader:
                    self.optimizer.zero_grad(set_to_none=True)
                    loss = train_step(batch)
                    loss.backward()
                    self.optimizer.step()
                    self.step += 1
                    epoch_losses.append(float(loss.detach()))
                    bar.advance()
                    if limit is not None and self.step >= limit:
                        break
                self.losses.extend(epoch_losses)
                finished = len(epoch_losses) == len(loader)
                self.epoch += finished
                label = f"epoch {self.epoch}" if finished else f"epoch {self.epoch + 1} (stopped at max_steps)"
                self.reporter.info(f"{self.name} {label}: loss {np.mean(epoch_losses):.4f}, {self.step} steps")
                if finished and self.epoch % getattr(self.cfg, "save_every", 1) == 0:
                    self.save(f"{self.epoch}.pth")
                self.save_last()
        return StageResult(self.save("final.pth"), self.losses, self.resumed_from)


def train_syncnet(crops: PersonCrops, cfg, out: Path, device: str, seed: int, workers: int, resume: bool, reporter: Reporter) -> StageResult:
    model = SyncNet328(crops.mode).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    stage = _Stage("syncnet", out / "syncnet", model, optimizer, cfg, SYNCNET_FORMAT, resume, reporter)
    loader = _loader(SyncPairs(crops, cfg.negatives, cfg.min_offset), cfg.batch_size, workers, seed)

    def step(batch):
        face, audio, label = (t.to(device) for t in batch)
        return sync_loss(*model(face, audio), label)

    return stage.run(loader, step)


def random_window(image: torch.Tensor, target: torch.Tensor, window: int):
    """One random ``window``-px square of the batch's crops, aligned to the U-Net's bottleneck
    cells (the same for the whole batch), and the (row, column) of its first cell."""
    span, grid = window // CELL, image.shape[-1] // CELL
    cells = (random.randrange(grid - span + 1), random.randrange(grid - span + 1))
    rows = slice(cells[0] * CELL, (cells[0] + span) * CELL)
    cols = slice(cells[1] * CELL, (cells[1] + span) * CELL)
    return image[..., rows, cols], target[..., rows, cols], cells


def train_unet(crops: PersonCrops, cfg, perceptual: PerceptualLoss, syncnet: SyncNet328 | None, out: Path, device: str,
               seed: int, workers: int, resume: bool, reporter: Reporter) -> StageResult:  # fmt: skip
    net = UNet328(6, crops.mode).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    stage = _Stage("unet", out / "unet", net, optimizer, cfg, UNET_FORMAT, resume, reporter)
    loader = _loader(InpaintingSamples(crops), cfg.batch_size, workers, seed + 1)

    if cfg.window is not None and (syncnet is not None or cfg.perceptual_weight):
        raise ConfigError("train.unet.window trains on parts of the crop: set train.unet.perceptual_weight=0 and train no SyncNet (both see whole crops)")

    def step(batch):
        image, target, audio = (t.to(device) for t in batch)
        cells = None
        if cfg.window is not None:
            image, target, cells = random_window(image, target, cfg.window)
        prediction = net(image, audio, cells)
        loss = F.l1_loss(prediction, target)
        if cfg.perceptual_weight:
            loss = loss + cfg.perceptual_weight * perceptual(prediction, target)
        if syncnet is not None:
            in_sync = torch.ones(len(prediction), 1, device=device)
            loss = loss + cfg.sync_weight * sync_loss(*syncnet(prediction, audio), in_sync)
        return loss

    return stage.run(loader, step)


def train_person(cfg, reporter: Reporter | None = None) -> dict[str, StageResult]:
    """Both stages for the person of ``cfg`` (a ``SyncTalk2DTrainConfig``)."""
    from lipsync.pipeline import resolve_device

    reporter = reporter or Reporter(quiet=bool(cfg.quiet))
    if not cfg.person:
        raise InputError("no person given: set person=PERSON_DIR (a folder made by tools/synctalk2d_prepare.py)")
    person = PersonDataset(cfg.person)
    out = Path(cfg.out_dir).expanduser() if cfg.out_dir else person.root / "train"
    device = resolve_device(cfg.device)
    _seed(cfg.seed)
    crops = PersonCrops(person, cfg.mode, cfg.interpolation)
    perceptual = PerceptualLoss(load_vgg(cfg.perceptual.vgg_weights, cfg.perceptual.allow_random)).to(device)
    results: dict[str, StageResult] = {}
    syncnet = None
    if cfg.syncnet.checkpoint:
        syncnet = load_syncnet(cfg.syncnet.checkpoint, cfg.mode, device)
    elif cfg.syncnet.train:
        results["syncnet"] = train_syncnet(crops, cfg.syncnet, out, device, cfg.seed, cfg.workers, cfg.resume, reporter)
        syncnet = load_syncnet(results["syncnet"].checkpoint, cfg.mode, device)
    if syncnet is not None:
        for p in syncnet.parameters():
            p.requires_grad_(False)
    results["unet"] = train_unet(crops, cfg.unet, perceptual, syncnet, out, device, cfg.seed, cfg.workers, cfg.resume, reporter)
    return results
