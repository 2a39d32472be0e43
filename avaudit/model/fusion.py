"""The event-specific fusion network: two backbones, five pooled layers, five linear classifiers."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from avaudit.config import ModelConfig
from avaudit.model.backbones import AudioNet, LogMel, VideoNet
from avaudit.vocab import LAYERS, Layer


def continuous_pool(z_v: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
    """Eq. 1: mean over all T steps of concat(z^V_t, z^A_t). (B, T, D) x2 -> (B, 2D)."""
    return torch.cat([z_v, z_a], dim=-1).mean(dim=1)


def instant_pool(z_v: torch.Tensor, z_a: torch.Tensor, k: int) -> torch.Tensor:
    """Eq. 2: mean of concat(z^V_t, z^A_t) over the K steps with the largest z^V_t . z^A_t."""
    top = (z_v * z_a).sum(dim=-1).topk(k, dim=1).indices  # (B, K)
    z = torch.cat([z_v, z_a], dim=-1)
    return z.gather(1, top[..., None].expand(-1, -1, z.shape[-1])).mean(dim=1)


def onset_pool(z_v: torch.Tensor, z_a: torch.Tensor, onsets: torch.Tensor) -> torch.Tensor:
    """Eq. 3: mean of concat(z^V_t, z^A_t) over the steps holding an audio onset.

    onsets: (B, T) bool. A clip with no onset at all falls back to every step (eq. 1): with no
    rhythm to follow, the whole clip is the least arbitrary choice.
    """
    weight = onsets.to(z_v.dtype)
    weight = torch.where(weight.sum(dim=1, keepdim=True) > 0, weight, torch.ones_like(weight))
    z = torch.cat([z_v, z_a], dim=-1)
    return (z * weight[..., None]).sum(dim=1) / weight.sum(dim=1, keepdim=True)


def visual_pool(z_v: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
    """Visual event layer: audio features zeroed, then eq. 1."""
    return continuous_pool(z_v, torch.zeros_like(z_a))


def audio_pool(z_v: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
    """Audio event layer: video features zeroed, then eq. 1."""
    return continuous_pool(torch.zeros_like(z_v), z_a)


def classify(pooled: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Eq. 4: O_i = FC_i(z_i), each layer's own linear classifier on its pooled features, the five as one
    batched matmul (one kernel instead of five on a GPU). (B, 5, 2D), (5, C, 2D), (5, C) -> (B, 5, C)."""
    return torch.einsum("bld,lcd->blc", pooled, weight) + bias


def fusion_loss(logits: torch.Tensor, labels: torch.Tensor, layers=LAYERS) -> torch.Tensor:
    """Eq. 5: the plain sum of the layers' cross-entropies. logits (B, 5, C), labels (B,)."""
    return sum(F.cross_entropy(logits[:, LAYERS.index(name)], labels) for name in layers)


def localization_map(v_maps: torch.Tensor, z_a: torch.Tensor) -> torch.Tensor:
    """Section 4.4: alpha_t = V_t . z^A_t. (B, T, H', W', D), (B, T, D) -> (B, T, H', W')."""
    return torch.einsum("bthwd,btd->bthw", v_maps, z_a)


class FusionNet(nn.Module):
    """Frames, waveform and onset steps in; the five layers' logits (B, 5, C) out."""

    def __init__(self, config: ModelConfig, n_classes: int):
        super().__init__()
        self.config = config
        self.log_mel = LogMel(sample_rate=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
                              win_length=config.win_length, n_mels=config.n_mels,
                              n_frames=config.n_samples // config.hop_length)
        self.audio_net = AudioNet(config.audio_widths, config.embed_dim, segments=int(config.seconds))
        self.video_net = VideoNet(config.video_stem_width, config.video_widths, config.video_blocks)
        self.heads = nn.ModuleDict({name: nn.Linear(2 * config.embed_dim, n_classes) for name in LAYERS})
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1, 1), persistent=False)

    def video_features(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames (B, T, H, W, 3) -> pre-pool maps V (B, T, H', W', D)."""
        x = frames.permute(0, 4, 1, 2, 3).float().div_(255)
        return self.video_net((x - self.mean) / self.std)

    def audio_features(self, waveform: torch.Tensor) -> torch.Tensor:
        """Waveform (B, N) -> z^A (B, T, D)."""
        return self.audio_net(self.log_mel(waveform))

    def features(self, frames, waveform, *, use_video: bool = True, use_audio: bool = True):
        """z^V (B, T, D), z^A (B, T, D) and V (or None); a modality left out is all zeros."""
        v_maps = self.video_features(frames) if use_video else None
        z_a = self.audio_features(waveform) if use_audio else None
        if v_maps is not None:
            z_v = v_maps.mean(dim=(2, 3))
        else:
            z_v = torch.zeros_like(z_a)
        if z_a is None:
            z_a = torch.zeros_like(z_v)
        return z_v, z_a, v_maps

    def heads_forward(self, z_v: torch.Tensor, z_a: torch.Tensor, onsets: torch.Tensor) -> torch.Tensor:
        """The five event-specific layers and their classifiers -> logits (B, 5, C).

        Works on any number of steps (a one-second window too); K is capped at the steps given.
        """
        pooled = {
            Layer.continuous: continuous_pool(z_v, z_a),
            Layer.instant: instant_pool(z_v, z_a, min(self.config.instant_k, z_v.shape[1])),
            Layer.onset: onset_pool(z_v, z_a, onsets),
            Layer.visual: visual_pool(z_v, z_a),
            Layer.audio: audio_pool(z_v, z_a),
        }
        return classify(torch.stack([pooled[name] for name in LAYERS], dim=1),  # (B, 5, 2D)
                        torch.stack([self.heads[name].weight for name in LAYERS]),  # (5, C, 2D)
                        torch.stack([self.heads[name].bias for name in LAYERS]))  # (5, C)

    def forward(self, frames, waveform, onsets, *, use_video: bool = True, use_audio: bool = True):
        z_v, z_a, _ = self.features(frames, waveform, use_video=use_video, use_audio=use_audio)
        return self.heads_forward(z_v, z_a, onsets)
