"""HL-CNN: the hybrid lightweight CNN of the seed paper.

Depthwise separable convolutions, inverted-bottleneck blocks with SE-style
channel attention, and a learnable fusion ``alpha * F1 + beta * F2`` of two
feature maps computed from the same input by two different branches.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn_act(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """SE channel attention: global pool, reduce, expand, sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(8, channels // reduction)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class DepthwiseSeparable(nn.Module):
    """Depthwise 3x3 conv then pointwise 1x1 conv."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.dw = _conv_bn_act(cin, cin, 3, stride, groups=cin)
        self.pw = _conv_bn_act(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class Bottleneck(nn.Module):
    """Inverted bottleneck: 1x1 expand, depthwise 3x3, SE, 1x1 project (+ shortcut)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, expand: int = 4) -> None:
        super().__init__()
        hidden = cin * expand
        self.expand = _conv_bn_act(cin, hidden, 1)
        self.dw = _conv_bn_act(hidden, hidden, 3, stride, groups=hidden)
        self.se = SqueezeExcite(hidden)
        self.project = _conv_bn_act(hidden, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + y if self.residual else y


class HLCNN(nn.Module):
    """Hybrid lightweight CNN; sized for 32x32 inputs, works at any size >= 16."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 16) -> None:
        super().__init__()
        w = width
        self.stem = _conv_bn_act(in_chans, w, 3)
        self.ds1 = DepthwiseSeparable(w, 2 * w, stride=2)
        self.block1 = Bottleneck(2 * w, 2 * w)
        self.branch1 = DepthwiseSeparable(2 * w, 4 * w, stride=2)
        self.branch2 = Bottleneck(2 * w, 4 * w, stride=2)
        self.alpha = nn.Parameter(torch.ones(()))
        self.beta = nn.Parameter(torch.ones(()))
        self.head = _conv_bn_act(4 * w, 8 * w, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(8 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block1(self.ds1(self.stem(x)))
        fused = self.alpha * self.branch1(x) + self.beta * self.branch2(x)
        return self.classifier(torch.flatten(self.pool(self.head(fused)), 1))
