"""CycleGAN networks (Zhu et al. 2017): a ResNet generator and a PatchGAN discriminator.

Both follow the original design (reflection padding, instance normalisation, two stride-2
down and up samplings around residual blocks, tanh output; 4 x 4 convolutions with
LeakyReLU 0.2 in the discriminator, one real/fake logit per patch) at a width and depth
small enough to train on a 2-core CPU in minutes: the images are 1-channel 64 x 64 crops
around pipette tips.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PatchDiscriminator", "ResnetGenerator", "init_weights", "instance_norm"]


def instance_norm(channels: int) -> nn.Module:
    """Instance normalisation (no affine, no running statistics, as in CycleGAN).

    Written as GroupNorm with one group per channel: the same function, but about six times
    faster than ``nn.InstanceNorm2d`` (forward + backward) on this CPU.
    """
    return nn.GroupNorm(channels, channels, affine=False)


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            instance_norm(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            instance_norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.body(x)
        return out


class ResnetGenerator(nn.Module):
    """c7s1-ngf, two stride-2 downsamplings, ``n_blocks`` residual blocks, two
    upsamplings, c7s1-1 with tanh: (B, 1, S, S) in [-1, 1] -> same shape in [-1, 1].

    ``S`` must be a multiple of 4.
    """

    def __init__(self, ngf: int = 16, n_blocks: int = 4, channels: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(channels, ngf, 7),
            instance_norm(ngf),
            nn.ReLU(inplace=True),
        ]
        width = ngf
        for _ in range(2):
            layers += [
                nn.Conv2d(width, width * 2, 3, stride=2, padding=1),
                instance_norm(width * 2),
                nn.ReLU(inplace=True),
            ]
            width *= 2
        layers += [_ResidualBlock(width) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1),
                instance_norm(width // 2),
                nn.ReLU(inplace=True),
            ]
            width //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"generator input sides must be multiples of 4, got {tuple(x.shape)}")
        out: torch.Tensor = self.net(x)
        return out


class PatchDiscriminator(nn.Module):
    """PatchGAN: ``n_layers`` stride-2 4 x 4 convolutions, one stride-1, then a 1-channel map
    of real/fake logits, one per overlapping patch (34 px receptive field for 2 layers)."""

    def __init__(self, ndf: int = 16, n_layers: int = 2, channels: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(channels, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        width = ndf
        for _ in range(1, n_layers):
            layers += [
                nn.Conv2d(width, width * 2, 4, stride=2, padding=1),
                instance_norm(width * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width *= 2
        layers += [
            nn.Conv2d(width, width * 2, 4, stride=1, padding=1),
            instance_norm(width * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width * 2, 1, 4, stride=1, padding=1),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """CycleGAN's initialisation: convolution weights ~ N(0, 0.02), biases 0."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
