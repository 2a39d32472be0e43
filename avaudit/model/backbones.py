"""The two backbones of supplement Table 6: per-step features z^A, z^V (B, T, D) and maps V_t."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models.video.resnet import BasicBlock, Conv3DNoTemporal, Conv3DSimple

from avaudit.errors import UsageError

KINETICS_WEIGHTS = "mc3_18-a90a0ba3.pth"  # torchvision's file name, for messages


def conv_bn_relu(c_in: int, c_out: int, kernel, stride, padding) -> nn.Sequential:
    """A Table 6(a) conv row: BatchNorm and ReLU follow every convolution."""
    return nn.Sequential(nn.Conv3d(c_in, c_out, kernel, stride, padding, bias=False),
                         nn.BatchNorm3d(c_out), nn.ReLU(inplace=True))


class AudioNet(nn.Module):
    """Table 6(a): log-mel (B, 10*S, F) as 10 one-second segments -> z^A (B, T, D).

    Every kernel has depth 1, so the 10 segments never mix; conv7 leaves 10 rows per segment,
    which become the 10 steps of that second (T = 100 for 10 s). fc8/fc9 are 1x1x1 convs; fc8
    has BatchNorm + ReLU like the convs, fc9 is left linear because it is the embedding.
    """

    def __init__(self, widths=(64, 64, 192, 256, 256, 256, 512), embed_dim: int = 512, segments: int = 10):
        super().__init__()
        w1, w2, w3, w4, w5, w6, w7 = widths
        self.segments = segments
        self.conv1 = conv_bn_relu(1, w1, (1, 3, 3), (1, 2, 1), (0, 1, 1))
        self.conv2 = conv_bn_relu(w1, w2, (1, 3, 3), (1, 1, 2), (0, 1, 1))
        self.maxpool2 = nn.MaxPool3d((1, 1, 3), (1, 1, 2))
        self.conv3 = conv_bn_relu(w2, w3, (1, 3, 3), (1, 1, 1), (0, 1, 1))
        self.maxpool3 = nn.MaxPool3d((1, 3, 3), (1, 2, 2))
        self.conv4 = conv_bn_relu(w3, w4, (1, 3, 3), (1, 1, 1), (0, 1, 1))
        self.conv5 = conv_bn_relu(w4, w5, (1, 3, 3), (1, 1, 1), (0, 1, 1))
        self.conv6 = conv_bn_relu(w5, w6, (1, 3, 3), (1, 1, 1), (0, 1, 1))
        self.maxpool6 = nn.MaxPool3d((1, 3, 2), (1, 2, 2))
        self.conv7 = conv_bn_relu(w6, w7, (1, 4, 4), (1, 1, 1), (0, 1, 0))
        self.fc8 = conv_bn_relu(w7, embed_dim, 1, 1, 0)
        self.fc9 = nn.Conv3d(embed_dim, embed_dim, 1)

    def rows(self):
        """(name, module) in Table 6(a) order, for shape checks."""
        names = ["conv1", "conv2", "maxpool2", "conv3", "maxpool3", "conv4", "conv5", "conv6", "maxpool6",
                 "conv7", "fc8", "fc9"]
        return [(name, getattr(self, name)) for name in names]

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        b, frames, bins = mel.shape
        x = mel.reshape(b, 1, self.segments, frames // self.segments, bins)  # (B, 1, 10, 100, 80)
        for _, layer in self.rows()[:-2]:
            x = layer(x)  # conv7 -> (B, D7, 10, 10, 1)
        x = x.flatten(2, 4)[..., None, None]  # (B, D7, T, 1, 1), t = segment * 10 + row
        x = self.fc9(self.fc8(x))
        return x.flatten(2).transpose(1, 2)  # (B, T, D)


class VideoNet(nn.Module):
    """MC3 (Table 6(b)) built from torchvision's blocks, kept per frame.

    With widths (64, 128, 256, 512) and blocks (2, 2, 2, 2) this is torchvision's mc3_18 without
    its pooling and classifier, parameter for parameter, so the Kinetics state dict loads as is.
    MC3 never strides in time, so T frames in give T steps out.
    """

    def __init__(self, stem_width: int = 64, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2)):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv3d(3, stem_width, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
            nn.BatchNorm3d(stem_width), nn.ReLU(inplace=True))
        c_in = stem_width
        for i, (width, n_blocks) in enumerate(zip(widths, blocks)):
            conv = Conv3DSimple if i == 0 else Conv3DNoTemporal  # MC3: 3D convs only in layer1
            stride = 1 if i == 0 else 2
            layers = []
            for j in range(n_blocks):
                downsample = None
                if j == 0 and (stride != 1 or c_in != width):
                    downsample = nn.Sequential(
                        nn.Conv3d(c_in, width, 1, conv.get_downsample_stride(stride), bias=False),
                        nn.BatchNorm3d(width))
                layers.append(BasicBlock(c_in, width, conv, stride if j == 0 else 1, downsample))
                c_in = width
            self.add_module(f"layer{i + 1}", nn.Sequential(*layers))
        for module in self.modules():  # torchvision's VideoResNet initialisation
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) normalised frames -> V (B, T, H', W', D), the pre-pool maps V_t."""
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return x.permute(0, 2, 3, 4, 1)


def load_video_weights(net: VideoNet, path: str | Path) -> None:
    """Load torchvision's Kinetics-400 mc3_18 state dict (a local file only; never downloaded).

    Its `fc` (the 400-way classifier) is dropped; anything else that does not fit is an error
    naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file (expected torchvision's {KINETICS_WEIGHTS})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a file that is not a state dict
        raise UsageError(f"{path}: not a PyTorch state dict ({type(err).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"{path}: not a state dict of tensors (expected torchvision's {KINETICS_WEIGHTS})")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        problems = [f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
                    if keys]
        raise UsageError(f"{path}: does not fit this preset's MC3 video backbone ({'; '.join(problems)}); "
                         f"Kinetics weights ({KINETICS_WEIGHTS}) fit the `paper` preset only")
    net.load_state_dict(state)


LOG_FLOOR = 1e-6  # added before the log so that digital silence stays finite


class LogMel(nn.Module):
    """Waveform (B, N) -> log-mel (B, frames, n_mels), supplement section 2.

    n_fft 512, hop 160, win 320, hann window, centred with reflect padding, power spectrum,
    80 mel bins. A 10-s clip at 16 kHz gives 1001 centred frames; the last is dropped so the
    frames split into T steps exactly (1000 x 80).
    """

    def __init__(self, *, sample_rate: int, n_fft: int, hop_length: int, win_length: int, n_mels: int,
                 n_frames: int):
        super().__init__()
        import torchaudio

        self.n_frames = n_frames
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, win_length=win_length, hop_length=hop_length,
            window_fn=torch.hann_window, center=True, pad_mode="reflect", power=2.0, n_mels=n_mels,
        )

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        with torch.autocast(waveform.device.type, enabled=False):
            mel = self.mel(waveform.float())  # (B, n_mels, frames)
        return torch.log(mel + LOG_FLOOR)[..., : self.n_frames].transpose(1, 2)
