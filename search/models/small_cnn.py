"""A small residual CNN for 32x32 inputs: the embedded default model."""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
    )


class ResidualBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity shortcut."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(channels, channels)
        self.conv2 = _conv_bn(channels, channels)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv2(self.act(self.conv1(x))))


class SmallCNN(nn.Module):
    """Three stages (32x32, 16x16, 8x8) of a residual block each, then a linear head.

    About 17 M MACs and 0.2 M parameters at 32x32 with the default widths.
    """

    def __init__(self, num_classes: int = 10, in_chans: int = 3, widths: tuple[int, int, int] = (16, 32, 64)) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.stem = _conv_bn(in_chans, w1)
        self.stage1 = ResidualBlock(w1)
        self.down1 = _conv_bn(w1, w2, stride=2)
        self.stage2 = ResidualBlock(w2)
        self.down2 = _conv_bn(w2, w3, stride=2)
        self.stage3 = ResidualBlock(w3)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(w3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.stem(x))
        x = self.stage1(x)
        x = self.stage2(self.act(self.down1(x)))
        x = self.stage3(self.act(self.down2(x)))
        return self.fc(torch.flatten(self.pool(x), 1))
