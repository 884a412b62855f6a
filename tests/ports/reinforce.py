"""Vanilla policy gradient (REINFORCE with reward-to-go and normalized returns) in the manner of public
policy-gradient code: a policy network with a Categorical head over discrete moves and a Binomial head over how
many units to order, episodes collected without gradients, then one batched update of -(log_prob * return) minus
an entropy bonus. Actions are drawn by inverting the heads' CDFs at uniforms from a numpy generator, so both
libraries take the same actions."""
import numpy as np
import torch
import torch.nn as nn
from torch.distributions import Binomial, Categorical

N_UNITS = 4


class Policy(nn.Module):
    def __init__(self, obs_dim=4, n_moves=3, hidden=32):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.move_logits = nn.Linear(hidden, n_moves)
        self.unit_logit = nn.Linear(hidden, 1)

    def forward(self, obs):
        h = self.body(obs)
        return Categorical(logits=self.move_logits(h)), Binomial(N_UNITS, logits=self.unit_logit(h).squeeze(-1))


def make_model():
    return Policy()


def draw(moves, units, u_move, u_units):
    """Inverse-CDF draws: the first move whose cumulative probability exceeds u, and a count of Bernoulli
    successes."""
    move = (u_move.unsqueeze(-1) > moves.probs.cumsum(-1)).sum(-1).clamp(max=moves.probs.shape[-1] - 1)
    count = (u_units < units.probs.unsqueeze(-1)).sum(-1).to(units.probs.dtype)
    return move, count


def reward(obs, move, count):
    best_move = obs[:, :3].argmax(-1)
    best_count = torch.clamp(torch.round(2 + 2 * obs[:, 3]), 0, N_UNITS)
    return (move == best_move).float() - 0.25 * (count - best_count).abs()


def rewards_to_go(rewards, gamma):
    out = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[1])
    for t in reversed(range(rewards.shape[0])):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def run(model, compile=False, epochs=10, episodes=16, horizon=5, gamma=0.95, entropy_coef=0.01):
    rng = np.random.default_rng(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def update(obs, moves, counts, returns):
        move_dist, unit_dist = model(obs)
        log_prob = move_dist.log_prob(moves) + unit_dist.log_prob(counts)
        entropy = move_dist.entropy().mean()
        loss = -(log_prob * returns).mean() - entropy_coef * entropy
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.detach()

    step = torch.compile(update) if compile else update
    losses, mean_rewards = [], []
    for epoch in range(epochs):
        all_obs, all_moves, all_counts, all_rewards = [], [], [], []
        obs = torch.tensor(rng.normal(size=(episodes, 4)), dtype=torch.float32)
        with torch.no_grad():
            for t in range(horizon):
                moves, units = model(obs)
                u_move = torch.tensor(rng.random(episodes), dtype=torch.float32)
                u_units = torch.tensor(rng.random((episodes, N_UNITS)), dtype=torch.float32)
                move, count = draw(moves, units, u_move, u_units)
                all_obs.append(obs)
                all_moves.append(move)
                all_counts.append(count)
                all_rewards.append(reward(obs, move, count))
                obs = torch.tensor(rng.normal(size=(episodes, 4)), dtype=torch.float32)
        returns = rewards_to_go(torch.stack(all_rewards), gamma)
        returns = (returns - returns.mean()) / (returns.std() + 1e-8)
        loss = step(torch.cat(all_obs), torch.cat(all_moves), torch.cat(all_counts), returns.reshape(-1))
        losses.append(loss.item())
        mean_rewards.append(torch.stack(all_rewards).mean().item())
        print(f"epoch {epoch}: loss {losses[-1]:.4f} mean reward {mean_rewards[-1]:.3f}")
    with torch.no_grad():
        moves, units = model(torch.zeros(2, 4))
        assert moves.sample((3,)).shape == (3, 2) and units.sample().shape == (2,)
    return [-r for r in mean_rewards]


if __name__ == "__main__":
    torch.manual_seed(0)
    run(make_model())
