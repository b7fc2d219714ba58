"""Exercise checks of chapter 08 online learning: Practice 08.a (a replay buffer), 08.b (the EWC penalty),
08.c (a deployment gate)."""
from __future__ import annotations

import torch
from torch import nn

from .. import online
from .harness import answer, call, known_mistake, passed, require


def _filled_buffer(buffer_class, capacity: int, n: int, chunk: int, seed: int):
    """A buffer of `capacity` offered examples 0..n-1 (x = [i], y = i % 2) in chunks of `chunk`."""
    buffer = call(buffer_class, getattr(buffer_class, "__name__", "MyReplayBuffer"), capacity, seed)
    for start in range(0, n, chunk):
        ids = torch.arange(start, min(start + chunk, n))
        call(buffer.add, "buffer.add", (ids[:, None].float(), ids % 2))
        size = call(len, "len", buffer)
        require(size == min(capacity, start + len(ids)),
                 f"After {start + len(ids)} examples offered to a buffer of capacity {capacity}, len(buffer) is "
                 f"{size}; it should be {min(capacity, start + len(ids))}: keep everything until the buffer is "
                 f"full, then never more than its capacity.")
    return buffer


def check_08_replay_buffer(buffer_class) -> None:
    """Practice 08.a: `buffer_class(capacity, seed)` with `add((x, y))`, `len()` and `sample(n) -> (x, y)`
    keeps a uniform random sample of everything offered (reservoir sampling). Tried on numbered examples."""
    answer(buffer_class, "MyReplayBuffer")
    buffer = _filled_buffer(buffer_class, capacity=20, n=200, chunk=7, seed=0)
    x, y = call(buffer.sample, "buffer.sample", 8)
    require(isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and len(x) == len(y) == 8,
             f"`sample(8)` should return (inputs, labels), two tensors of 8 rows; got {type(x).__name__} and "
             f"{type(y).__name__} of lengths {len(x)} and {len(y)}.")
    ids = x[:, 0].long()
    require(bool((ids % 2 == y).all()), "`sample` returned labels that don't belong to the inputs beside them: "
                                         "keep inputs and labels in the same slots, and sample both with one index.")
    require(len(set(ids.tolist())) == 8, "`sample(8)` returned the same example twice: draw without replacement "
                                          "(torch.randperm(len(self))[:n]).")
    x, _ = call(buffer.sample, "buffer.sample", 100)
    require(len(x) == 20, f"`sample(100)` from a buffer of 20 returned {len(x)} rows; it should return all 20 "
                           f"(at most what the buffer holds).")
    kept = sorted(x[:, 0].long().tolist())
    require(len(set(kept)) == 20, "The buffer holds the same example twice: each offered example takes at most one slot.")
    # Reservoir sampling keeps every example with the same probability: as many from the first half as the second.
    early = []
    for seed in range(40):
        held, _ = _filled_buffer(buffer_class, capacity=20, n=200, chunk=7, seed=seed).sample(20)
        early.append((held[:, 0] < 100).float().mean().item())
    share = sum(early) / len(early)
    require(share > 0.02, f"Only {share:.0%} of what your buffer holds comes from the first half of the stream: it keeps "
                           f"the newest examples (a queue), so the old data is forgotten anyway. Replace a slot only "
                           f"with probability capacity / seen.")
    require(share < 0.98, f"{share:.0%} of what your buffer holds comes from the first half of the stream: once full, "
                           f"it hardly ever takes a new example. Draw a slot in range(seen) and replace it if it is below "
                           f"the capacity.")
    require(0.38 < share < 0.62,
             f"{share:.0%} of what your buffer holds comes from the first half of the stream; with reservoir sampling "
             f"every example is kept with the same probability, so about 50%. Example number n (counting from 1) should "
             f"replace a random slot with probability capacity / n.")
    passed(f"a reservoir of 20 out of 200 examples holds {share:.0%} from the first half of the stream (40 runs), "
           f"as a uniform sample should: old data keeps its share however long the stream runs.")


def check_08_ewc_penalty(penalty_fn) -> None:
    """Practice 08.b: `penalty_fn(model, fisher, anchor)` = sum over the parameters named in `fisher` of
    F * (theta - anchor)^2 (no 1/2: the strength takes care of it), differentiable."""
    answer(penalty_fn, "my_ewc_penalty")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
    fisher = {n: torch.rand_like(p) for n, p in model.named_parameters() if n != "0.bias"}
    at_anchor = call(penalty_fn, "my_ewc_penalty", model, fisher, anchor)
    require(isinstance(at_anchor, torch.Tensor) and at_anchor.numel() == 1,
             f"The penalty should be one number as a tensor (so that it can be added to the loss and "
             f"backpropagated); got {type(at_anchor).__name__}.")
    require(abs(at_anchor.item()) < 1e-9, f"At the anchor itself the penalty should be 0; yours is {at_anchor.item():.4g}.")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    mine = call(penalty_fn, "my_ewc_penalty", model, fisher, anchor)
    right = online.ewc_penalty(model, fisher, anchor).item()
    value = float(mine.detach()) if isinstance(mine, torch.Tensor) else float(mine)
    named = dict(model.named_parameters())
    unweighted = sum(((named[n] - anchor[n]) ** 2).sum().item() for n in fisher)
    absolute = sum((fisher[n] * (named[n] - anchor[n]).abs()).sum().item() for n in fisher)
    everything = sum((fisher.get(n, torch.ones_like(p)) * (p - anchor[n]) ** 2).sum().item() for n, p in named.items())
    mistakes = [
        (right / 2, "half the right value: leave out the 1/2 here (the EWC criterion multiplies by strength / 2)"),
        (right * 2, "twice the right value: no factor 2"),
        (unweighted, "the unweighted squared distance: weight each parameter's (theta - anchor)^2 by its Fisher value"),
        (absolute, "F * |theta - anchor|: the distance should be squared"),
        (everything, "it includes a parameter that has no Fisher value: sum only over the names in `fisher`"),
    ]
    relative = lambda a, b: abs(a - b) <= 1e-4 * max(1.0, abs(b))  # noqa: E731
    if abs(value - right) > 1e-4 * max(1.0, abs(right)):
        hint = known_mistake(value, [(wrong, hint) for wrong, hint in mistakes if abs(wrong - right) > 1e-6],
                             same=relative)
        require(not hint, f"your penalty is {value:.4f}, {hint} (expected {right:.4f}).")
        require(False, f"your penalty is {value:.4f}; expected {right:.4f} = sum over the parameters n in `fisher` "
                       f"of (fisher[n] * (theta_n - anchor[n]) ** 2).sum().")
    require(getattr(mine, "requires_grad", False),
             "Your penalty has the right value but no gradient: compute it from the model's parameters themselves "
             "(not .detach(), .item() or .data copies), so that training can push the weights back.")
    passed(f"penalty {value:.4f}, with gradients: each weight is pulled back to its old value in proportion to "
           f"its Fisher information on the old data.")


def check_08_gate(gate, log, original_old: float, bad_step: int, n_val: int) -> None:
    """Practice 08.c: `gate` (an `online.Gate`) deploys updates that are as good as the deployed model within
    noise, and rejects the mislabelled update of the notebook's `log`, a regression on the new data and a
    silent trade of old accuracy for new."""
    answer(gate, "MY_GATE")
    require(callable(getattr(gate, "check", None)),
             f"`MY_GATE` should be an online.Gate(min_gain=..., max_old_drop=...), not a {type(gate).__name__}.")
    one = 1 / n_val
    old = original_old

    def decide(gain, drop, deployed_new=0.7):
        return gate.check({"old": old - drop, "new": deployed_new + gain}, {"old": old, "new": deployed_new},
                          {"old": old})[0]

    rows = log.to_dict("records") if hasattr(log, "to_dict") else list(log)
    bad = [r for r in rows if int(str(r["steps"]).split("-")[0]) <= bad_step <= int(str(r["steps"]).split("-")[1])]
    require(len(bad) >= 1, f"The log has no update that used step {bad_step}'s batch: pass the deployment loop's log.")
    bad = bad[0]   # its first attempt (a retrained one after an investigation follows it)
    bad_gain, bad_drop = bad["new"] - bad["deployed_new"], old - bad["old"]
    cases = [
        ("an update one validation image worse on the new data and one image lower on the old data (noise)",
         -one, one, True, "a gate stricter than one image rejects good updates by chance: lower `min_gain` a "
                          "little below 0, and keep `max_old_drop` above one image"),
        ("a clear improvement: +0.05 on the new data, nothing lost on the old", 0.05, 0.0, True,
         "a gate should let a clear improvement through"),
        (f"the update trained on the mislabelled batch ({bad_gain:+.3f} on the new data, {-bad_drop:+.3f} on the old)",
         bad_gain, bad_drop, False, "this is the update with swapped labels: your `min_gain` lets it through"),
        ("a regression of 0.05 on the new data", -0.05, 0.0, False,
         "an update that makes the new data worse by several images should not be deployed: raise `min_gain`"),
        ("+0.10 on the new data for 0.10 lost on the old data", 0.10, 0.10, False,
         "trading a tenth of the old accuracy for the new data is a decision for a person, not a silent deploy: "
         "lower `max_old_drop`"),
    ]
    for what, gain, drop, should, hint in cases:
        decided = decide(gain, drop)
        require(decided == should,
                 f"your gate {'deploys' if decided else 'rejects'} {what}; it should "
                 f"{'deploy' if should else 'reject'} it: {hint}.")
    passed(f"min_gain {gate.min_gain:+.3f}, max_old_drop {gate.max_old_drop:.3f} (one validation image is {one:.3f}): "
           f"noise passes, the mislabelled update, a regression and a silent trade-off are stopped.")
