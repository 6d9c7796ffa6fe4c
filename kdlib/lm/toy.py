"""The toy of notebook 05: a unimodal student fitted to a bimodal teacher by forward KL, reverse KL or GKD's
generalized JSD, on a discretised line (each grid point is one "token").

Forward KL(p || q) punishes q ~ 0 where p > 0, so the student spreads over both modes (mode covering);
reverse KL(q || p) punishes q > 0 where p ~ 0, so the student sits on one mode (mode seeking). The scaled
JSD moves between the two as beta goes from 0 to 1 (``kdlib.losses.tokens.generalized_jsd``).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from kdlib.losses.tokens import generalized_jsd

GRID = torch.linspace(-6, 6, 121)


def bimodal_teacher(grid: torch.Tensor = GRID, modes=(-2.5, 2.5), widths=(0.6, 0.8), weights=(0.55, 0.45)
                    ) -> torch.Tensor:
    """Teacher logits on the grid: the log of a two-Gaussian mixture."""
    dens = sum(w * torch.exp(-0.5 * ((grid - m) / s) ** 2) / s for m, s, w in zip(modes, widths, weights))
    return dens.clamp_min(1e-30).log()


def gaussian_logits(mu: torch.Tensor, log_sigma: torch.Tensor, grid: torch.Tensor = GRID) -> torch.Tensor:
    return -0.5 * ((grid - mu) / log_sigma.exp()) ** 2


def fit_gaussian(teacher_logits: torch.Tensor, beta: float, steps: int = 200, init=(1.0, -0.5), lr: float = 0.1,
                 grid: torch.Tensor = GRID) -> tuple[float, float]:
    """Fit the student's mean and log-std by Adam on ``generalized_jsd(student, teacher, beta)``: beta = 0 is
    forward KL, beta = 1 reverse KL. Starts slightly right of centre so reverse KL has a mode to fall into."""
    mu = torch.tensor(float(init[0]), requires_grad=True)
    log_sigma = torch.tensor(float(init[1]), requires_grad=True)
    opt = torch.optim.Adam([mu, log_sigma], lr=lr)
    for _ in range(steps):
        loss = generalized_jsd(gaussian_logits(mu, log_sigma, grid)[None], teacher_logits[None], beta=beta)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return mu.item(), log_sigma.exp().item()


def draw_fits(betas=(0.0, 0.5, 1.0), steps: int = 200, ax=None):
    """Teacher density and the fitted student for each beta; returns {beta: (mu, sigma)}."""
    t = bimodal_teacher()
    ax = ax or plt.subplots(figsize=(9, 3.5))[1]
    ax.fill_between(GRID, torch.softmax(t, -1), alpha=0.3, color="gray", label="teacher (bimodal)")
    fits = {}
    for beta in betas:
        mu, sigma = fit_gaussian(t, beta, steps)
        fits[beta] = (mu, sigma)
        name = {0.0: "forward KL", 1.0: "reverse KL"}.get(beta, f"JSD beta={beta:g}")
        ax.plot(GRID, torch.softmax(gaussian_logits(torch.tensor(mu), torch.tensor(sigma).log()), -1),
                label=f"{name}: mu={mu:.2f}, sigma={sigma:.2f}")
    ax.set_xlabel("token (a point on the line)")
    ax.set_ylabel("probability")
    ax.legend(fontsize=8)
    plt.show()
    return fits


def jsd_explorer(steps: int = 200):
    """A beta slider that refits and redraws the student; without a live kernel it draws once at beta 0.5."""
    import ipywidgets as widgets

    return widgets.interact(lambda beta: draw_fits((beta,), steps),
                            beta=widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="beta"))
