"""Dev experiment (not shipped; docs/quality.md "An adversarial post-filter"): the
post-filter of ``layered-post`` trained further with a conditional patch critic beside v2's
loss, then run on the dev suite.

    python benchmarks/train_post_filter.py --work WORK --out /tmp/unused.pt   # renders, caches
    python benchmarks/experiments/post_filter_adversarial.py --work WORK --name g1 \
        --adv 0.1 --fm 1 [--epochs 20] [--scratch] [--dev-suite /tmp/devsuite]

The critic: bands as channels, four spectrally normalised dilated convolutions over the
band-normalised log-mel (the judges' view), a per-frame logit plus a projection of the
style's statistics (Miyato & Koyama 2018); hinge loss on real (target, style), fake
(filtered output, style) and, with ``--mismatch``, real targets under another pair's style
(Reed et al. 2016). The filter: v2's loss + ``adv`` x hinge + ``fm`` x feature matching.
``--adv 0 --fm 0 --mismatch 0 --epochs 25`` is the control (the same further training, no critic).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
F = nn.functional


class Critic(nn.Module):
    def __init__(self, bands: int, style_features: int, ch: int = 96, cond: int = 128) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.condition = nn.Sequential(nn.Linear(style_features, cond), nn.GELU(),
                                       nn.Linear(cond, ch))
        self.convs = nn.ModuleList([sn(nn.Conv1d(bands, ch, 5, padding=2)), *(
            sn(nn.Conv1d(ch, ch, 3, padding=d, dilation=d)) for d in (2, 4, 8))])
        self.out = sn(nn.Conv1d(ch, 1, 1))

    def forward(self, m: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, list]:
        h = (m - m.mean(-1, keepdim=True)) / 10.0
        feats = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)
            feats.append(h)
        e = self.condition(s / 10.0)
        return self.out(h)[:, 0] + (e[..., None] * h).sum(1) / h.shape[1] ** 0.5, feats


def main() -> None:
    import hpc_nst.models.post_filter as pfm
    from hpc_nst.train.post_filter import PostFilterTraining, load_examples, losses

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--adv", type=float, default=0.1)
    ap.add_argument("--fm", type=float, default=1.0)
    ap.add_argument("--mismatch", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--scratch", action="store_true", help="not from the shipped weights")
    ap.add_argument("--seed", type=int, default=101)
    ap.add_argument("--dev-suite", default="/tmp/devsuite")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    x, z, s = load_examples(args.work / "triplets", args.work / "outputs")
    order = torch.randperm(len(x))
    val, train = order[: len(x) // 10], order[len(x) // 10:]
    net = pfm.PostFilterNet()
    if not args.scratch:
        net.load_state_dict(torch.load(pfm.DEFAULT_ASSET, weights_only=True)["state_dict"])
    critic = Critic(pfm.N_MELS, pfm.STYLE_FEATURES)
    opt_g = torch.optim.Adam(net.parameters(), 1e-3 if args.scratch else 1e-4, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(critic.parameters(), 2e-4, betas=(0.5, 0.9))
    opts, t0 = PostFilterTraining(), time.time()
    for epoch in range(args.epochs):
        perm, critic_loss = train[torch.randperm(len(train))], 0.0
        for i in range(0, len(perm), 16):
            b = perm[i:i + 16]
            y = x[b] + net(x[b], s[b])
            loss_d = (F.relu(1 - critic(z[b], s[b])[0]).mean()
                      + F.relu(1 + critic(y.detach(), s[b])[0]).mean())
            if args.mismatch and len(b) > 1:
                loss_d = loss_d + args.mismatch * F.relu(
                    1 + critic(z[b], s[b].roll(1, 0))[0]).mean()
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            fake, fake_feats = critic(y, s[b])
            with torch.no_grad():
                real_feats = critic(z[b], s[b])[1]
            matching = sum((a - r).abs().mean() for a, r in zip(fake_feats, real_feats))
            loss_g = (losses(net, x[b], z[b], s[b], opts)[0] - args.adv * fake.mean()
                      + args.fm * matching / len(fake_feats))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            critic_loss += float(loss_d.detach()) / -(-len(perm) // 16)
        with torch.no_grad():
            _, l1, stats = losses(net, x[val], z[val], s[val], opts)
        print(f"epoch {epoch + 1}: critic hinge {critic_loss:.3f} per batch, validation L1 "
              f"{float(l1):.3f} dB, statistics {float(stats):.3f} dB ({time.time() - t0:.0f} s)",
              flush=True)
    out = args.work / f"{args.name}.pt"
    pfm.save_post_filter(net.eval(), out, {"experiment": vars(args) | {"work": str(args.work)}})
    pfm.DEFAULT_ASSET = out  # layered-post loads this one
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import quality_dev

    sys.argv = ["quality_dev.py", "--dev-suite", args.dev_suite, "--job",
                str(ROOT / "jobs" / "layered-post.toml"), "--judge",
                str(ROOT / "hpc_nst" / "assets" / "judge-2sf.npz")]
    quality_dev.main()


if __name__ == "__main__":
    main()
