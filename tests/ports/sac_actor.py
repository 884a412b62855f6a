"""The actor and critic updates of soft actor-critic (SAC) in the manner of public SAC implementations: a Gaussian
policy head (mean, clamped log-std) squashed by tanh through TransformedDistribution(Normal, TanhTransform), the
reparameterized action's log-probability with the tanh correction, twin Q critics, a soft target update, Adam.
The exploration noise comes from a numpy generator, so both libraries see the same actions."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import Normal, TransformedDistribution
from torch.distributions.transforms import TanhTransform

LOG_STD_MIN, LOG_STD_MAX = -5, 2


class Actor(nn.Module):
    def __init__(self, obs_dim=3, act_dim=2, hidden=32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, act_dim)
        self.log_std = nn.Linear(hidden, act_dim)

    def forward(self, obs, eps):
        h = self.net(obs)
        mu = self.mu(h)
        log_std = torch.clamp(self.log_std(h), LOG_STD_MIN, LOG_STD_MAX)
        std = log_std.exp()
        dist = TransformedDistribution(Normal(mu, std), [TanhTransform(cache_size=1)])
        # rsample with the given noise: the cached pre-tanh value makes log_prob exact at |action| -> 1
        action = dist.transforms[0](mu + std * eps)
        log_prob = dist.log_prob(action).sum(-1, keepdim=True)
        return action, log_prob


class Critic(nn.Module):
    def __init__(self, obs_dim=3, act_dim=2, hidden=32):
        super().__init__()
        self.q1 = nn.Sequential(nn.Linear(obs_dim + act_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.q2 = nn.Sequential(nn.Linear(obs_dim + act_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, obs, action):
        x = torch.cat([obs, action], dim=-1)
        return self.q1(x), self.q2(x)


class SAC(nn.Module):
    def __init__(self):
        super().__init__()
        self.actor = Actor()
        self.critic = Critic()
        self.critic_target = Critic()
        self.critic_target.load_state_dict(self.critic.state_dict())


def make_model():
    return SAC()


def reward(obs, action):
    """A one-step task: the best action is a fixed squashed linear map of the observation."""
    target = torch.tanh(obs[:, :2] - 0.5 * obs[:, 2:])
    return -((action - target) ** 2).sum(-1, keepdim=True)


def run(model, compile=False, steps=15, batch=32, gamma=0.9, tau=0.05, alpha=0.1):
    rng = np.random.default_rng(0)
    actor_opt = torch.optim.Adam(model.actor.parameters(), lr=3e-3)
    critic_opt = torch.optim.Adam(model.critic.parameters(), lr=3e-3)

    def update(obs, next_obs, eps, next_eps):
        with torch.no_grad():
            next_action, next_log_prob = model.actor(next_obs, next_eps)
            q1_t, q2_t = model.critic_target(next_obs, next_action)
            target_q = gamma * (torch.min(q1_t, q2_t) - alpha * next_log_prob)
        action, log_prob = model.actor(obs, eps)
        q1, q2 = model.critic(obs, action.detach())
        r = reward(obs, action.detach())
        critic_loss = F.mse_loss(q1, r + target_q) + F.mse_loss(q2, r + target_q)
        critic_opt.zero_grad()
        critic_loss.backward()
        critic_opt.step()

        q1_pi, q2_pi = model.critic(obs, action)
        actor_loss = (alpha * log_prob - torch.min(q1_pi, q2_pi) - reward(obs, action)).mean()
        actor_opt.zero_grad()
        actor_loss.backward()
        actor_opt.step()
        with torch.no_grad():
            for p, p_t in zip(model.critic.parameters(), model.critic_target.parameters()):
                p_t.mul_(1 - tau).add_(tau * p)
        return actor_loss.detach(), critic_loss.detach()

    step = torch.compile(update) if compile else update
    losses = []
    for i in range(steps):
        obs, next_obs = (torch.tensor(rng.normal(size=(batch, 3)), dtype=torch.float32) for _ in range(2))
        eps, next_eps = (torch.tensor(rng.normal(size=(batch, 2)), dtype=torch.float32) for _ in range(2))
        actor_loss, critic_loss = step(obs, next_obs, eps, next_eps)
        losses.append(actor_loss.item())
        if i % 5 == 0:
            print(f"step {i}: actor {actor_loss.item():.4f} critic {critic_loss.item():.4f}")
    with torch.no_grad():
        action, _ = model.actor(torch.zeros(4, 3), torch.zeros(4, 2))
        assert action.abs().max() < 1
    return losses


if __name__ == "__main__":
    torch.manual_seed(0)
    run(make_model())
