"""Chapter 08's checks (Practice 08.a replay buffer, 08.b EWC penalty, 08.c gate): right answers and a catalogue
of wrong ones, verdict and feedback asserted. Moved here from test_online.py with every assertion kept."""
import pytest
import torch
from torch import nn

from course_utils import online
from course_utils.exercises import ExerciseError, check_08_ewc_penalty, check_08_gate, check_08_replay_buffer
from course_utils.exercises.harness import NotDone


def test_check_replay_buffer():
    check_08_replay_buffer(online.ReplayBuffer)
    with pytest.raises(ExerciseError, match="Not done yet"):
        check_08_replay_buffer(...)

    class Queue(online.ReplayBuffer):  # keeps the newest examples
        def add(self, data):
            x, y = data
            for xi, yi in zip(x, y):
                self.seen += 1
                self.x = xi[None] if self.x is None else torch.cat([self.x, xi[None]])[-self.capacity:]
                self.y = yi[None] if self.y is None else torch.cat([self.y, yi[None]])[-self.capacity:]
    with pytest.raises(ExerciseError, match="newest"):
        check_08_replay_buffer(Queue)


def test_check_ewc_penalty():
    check_08_ewc_penalty(online.ewc_penalty)
    with pytest.raises(ExerciseError, match="Not done yet"):
        check_08_ewc_penalty(...)
    half = lambda m, f, a: online.ewc_penalty(m, f, a) / 2  # noqa: E731
    with pytest.raises(ExerciseError, match="half"):
        check_08_ewc_penalty(half)
    detached = lambda m, f, a: online.ewc_penalty(m, f, a).detach()  # noqa: E731
    with pytest.raises(ExerciseError, match="no gradient"):
        check_08_ewc_penalty(detached)

    def unweighted(model, fisher, anchor):
        params = dict(model.named_parameters())
        return sum(((params[n] - anchor[n]) ** 2).sum() for n in fisher)
    with pytest.raises(ExerciseError, match="unweighted"):
        check_08_ewc_penalty(unweighted)


def test_check_gate():
    import pandas as pd
    from course_utils.exercises import check_08_gate
    log = pd.DataFrame([dict(steps="1-2", old=0.9, new=0.8, deployed_new=0.78),
                        dict(steps="3-4", old=0.88, new=0.7, deployed_new=0.8)])
    check_08_gate(online.Gate(min_gain=-0.02, max_old_drop=0.05), log, 0.91, 3, 80)
    with pytest.raises(ExerciseError, match="Not done yet"):
        check_08_gate(..., log, 0.91, 3, 80)
    with pytest.raises(ExerciseError, match="by chance"):
        check_08_gate(online.Gate(min_gain=0.0, max_old_drop=0.05), log, 0.91, 3, 80)
    with pytest.raises(ExerciseError, match="mislabelled"):
        check_08_gate(online.Gate(min_gain=-0.2, max_old_drop=0.05), log, 0.91, 3, 80)
    with pytest.raises(ExerciseError, match="max_old_drop"):
        check_08_gate(online.Gate(min_gain=-0.02, max_old_drop=0.2), log, 0.91, 3, 80)


# --- more wrong answers (issue 13: at least three per check, every diagnosis branch) ---------------

class _Reservoir(online.ReplayBuffer):
    pass


def test_replay_buffer_more_wrong_answers():
    class Placeholder:
        def __init__(self, capacity, seed=0):
            raise NotImplementedError
    with pytest.raises(NotDone, match="NotImplementedError"):
        check_08_replay_buffer(Placeholder)

    class Unbounded(online.ReplayBuffer):   # keeps everything
        def add(self, data):
            x, y = data
            self.seen += len(y)
            self.x = x.clone() if self.x is None else torch.cat([self.x, x])
            self.y = y.clone() if self.y is None else torch.cat([self.y, y])
    with pytest.raises(ExerciseError, match="never more than its capacity"):
        check_08_replay_buffer(Unbounded)

    class WithReplacement(online.ReplayBuffer):
        def sample(self, n):
            chosen = torch.randint(len(self), (n,), generator=self.generator)
            chosen[1] = chosen[0]
            return self.x[chosen], self.y[chosen]
    with pytest.raises(ExerciseError, match="same example twice"):
        check_08_replay_buffer(WithReplacement)

    class Unpaired(online.ReplayBuffer):
        def sample(self, n):
            x, y = super().sample(n)
            return x, 1 - y
    with pytest.raises(ExerciseError, match="don't belong"):
        check_08_replay_buffer(Unpaired)

    class TooMany(online.ReplayBuffer):
        def sample(self, n):
            x, y = super().sample(min(n, 8))
            return x, y
    with pytest.raises(ExerciseError, match="should return all 20"):
        check_08_replay_buffer(TooMany)

    class NeverReplaces(online.ReplayBuffer):   # full once, then keeps the first examples forever
        def add(self, data):
            x, y = data
            for xi, yi in zip(x, y):
                self.seen += 1
                if len(self) < self.capacity:
                    self.x = xi[None].clone() if self.x is None else torch.cat([self.x, xi[None]])
                    self.y = yi[None].clone() if self.y is None else torch.cat([self.y, yi[None]])
    with pytest.raises(ExerciseError, match="hardly ever takes a new example"):
        check_08_replay_buffer(NeverReplaces)

    class HalfProbability(online.ReplayBuffer):   # replaces with probability 1/2, not capacity / seen
        def add(self, data):
            x, y = data
            for xi, yi in zip(x, y):
                self.seen += 1
                if len(self) < self.capacity:
                    self.x = xi[None].clone() if self.x is None else torch.cat([self.x, xi[None]])
                    self.y = yi[None].clone() if self.y is None else torch.cat([self.y, yi[None]])
                elif torch.rand(1, generator=self.generator).item() < 0.25:
                    slot = torch.randint(self.capacity, (1,), generator=self.generator).item()
                    self.x[slot], self.y[slot] = xi, yi
    with pytest.raises(ExerciseError, match="about 50%"):
        check_08_replay_buffer(HalfProbability)

    class Broken(online.ReplayBuffer):
        def sample(self, n):
            raise IndexError("oops")
    with pytest.raises(ExerciseError, match=r"`buffer.sample\(8\)` raised IndexError"):
        check_08_replay_buffer(Broken)
    check_08_replay_buffer(_Reservoir)


def test_ewc_penalty_more_wrong_answers():
    def placeholder(model, fisher, anchor):
        raise NotImplementedError
    with pytest.raises(NotDone, match="NotImplementedError"):
        check_08_ewc_penalty(placeholder)
    with pytest.raises(ExerciseError, match="twice the right value"):
        check_08_ewc_penalty(lambda m, f, a: online.ewc_penalty(m, f, a) * 2)

    def absolute(model, fisher, anchor):
        params = dict(model.named_parameters())
        return sum((fisher[n] * (params[n] - anchor[n]).abs()).sum() for n in fisher)
    with pytest.raises(ExerciseError, match="squared"):
        check_08_ewc_penalty(absolute)

    def everything(model, fisher, anchor):
        return sum((fisher.get(n, torch.ones_like(p)) * (p - anchor[n]) ** 2).sum() for n, p in model.named_parameters())
    with pytest.raises(ExerciseError, match="no Fisher value"):
        check_08_ewc_penalty(everything)
    with pytest.raises(ExerciseError, match="one number as a tensor"):
        check_08_ewc_penalty(lambda m, f, a: 0.0)
    with pytest.raises(ExerciseError, match="At the anchor itself"):
        check_08_ewc_penalty(lambda m, f, a: online.ewc_penalty(m, f, a) + 1)
    with pytest.raises(ExerciseError, match="expected"):
        check_08_ewc_penalty(lambda m, f, a: online.ewc_penalty(m, f, a) * 3)
    with pytest.raises(ExerciseError, match="raised KeyError"):
        check_08_ewc_penalty(lambda m, f, a: f["missing"])


def test_gate_more_wrong_answers():
    import pandas as pd
    log = pd.DataFrame([dict(steps="1-2", old=0.9, new=0.8, deployed_new=0.78),
                        dict(steps="3-4", old=0.88, new=0.7, deployed_new=0.8)])
    with pytest.raises(ExerciseError, match="should be an online.Gate"):
        check_08_gate((-0.02, 0.05), log, 0.91, 3, 80)
    with pytest.raises(ExerciseError, match="no update that used step 9"):
        check_08_gate(online.Gate(min_gain=-0.02, max_old_drop=0.05), log, 0.91, 9, 80)

    class OnlySmallChanges:   # a home-made gate that deploys only changes within noise
        min_gain, max_old_drop = -0.02, 0.05

        def check(self, candidate, deployed, original):
            return abs(candidate["new"] - deployed["new"]) < 0.02, "small"
    with pytest.raises(ExerciseError, match="clear improvement"):
        check_08_gate(OnlySmallChanges(), log, 0.91, 3, 80)
    with pytest.raises(ExerciseError, match="regression of 0.05"):
        check_08_gate(online.Gate(min_gain=-0.06, max_old_drop=0.05), pd.DataFrame(
            [dict(steps="3-4", old=0.88, new=0.6, deployed_new=0.8)]), 0.91, 3, 80)
    with pytest.raises(ExerciseError, match="one validation image worse"):
        check_08_gate(online.Gate(min_gain=-0.02, max_old_drop=0.0), log, 0.91, 3, 80)
