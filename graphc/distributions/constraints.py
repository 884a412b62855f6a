"""torch.distributions.constraints: the regions a distribution's parameters and samples live in. check(value) gives
a bool tensor (one entry per event) saying where value satisfies the constraint."""
from __future__ import annotations

from ..ops.elementwise import abs, eq, logical_and
from ..ops.layout import diagonal, tril
from ..ops.reduction import all, sum
from ..state import STATE
from ..tensor import Tensor


def _shown(bound) -> str:
    """A bound as torch's repr shows it; while graphc.compile traces, a tensor's values are not known (formatting
    them would break the graph): its shape instead."""
    if isinstance(bound, Tensor) and STATE.capture is not None:
        return f"Tensor of shape {tuple(bound.shape)}"
    return f"{bound}"


class Constraint:
    """A region of values; event_dim: how many rightmost dims one event has; is_discrete: integer-valued."""

    is_discrete = False
    event_dim = 0

    def check(self, value: Tensor) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.__class__.__name__[1:] + "()"


class _Dependent(Constraint):
    """A constraint that depends on other parameters (checked by the distribution itself, not by validate_args)."""

    def __init__(self, *, is_discrete: bool = False, event_dim: int = 0):
        self.is_discrete, self.event_dim = is_discrete, event_dim

    def __call__(self, *, is_discrete: bool = False, event_dim: int = 0) -> _Dependent:
        return _Dependent(is_discrete=is_discrete, event_dim=event_dim)

    def check(self, value):
        raise ValueError("Cannot determine validity of dependent constraint")


class _DependentProperty(property, _Dependent):
    """A property whose value is a constraint built from the distribution's parameters (Uniform's support); used
    as @dependent_property or @dependent_property(is_discrete=..., event_dim=...)."""

    def __init__(self, fn=None, *, is_discrete: bool = False, event_dim: int = 0):
        property.__init__(self, fn)
        _Dependent.__init__(self, is_discrete=is_discrete, event_dim=event_dim)

    def __call__(self, fn) -> _DependentProperty:
        return _DependentProperty(fn, is_discrete=self.is_discrete, event_dim=self.event_dim)


def is_dependent(constraint) -> bool:
    """torch.distributions.constraints.is_dependent."""
    return isinstance(constraint, _Dependent)


class _Real(Constraint):
    def check(self, value):
        return eq(value, value)  # not NaN


def _binary(value: Tensor) -> Tensor:
    """Where value is 0 or 1."""
    return eq(value, 0) | eq(value, 1)


class _Boolean(Constraint):
    is_discrete = True

    def check(self, value):
        return _binary(value)


class _GreaterThan(Constraint):
    def __init__(self, lower_bound):
        self.lower_bound = lower_bound

    def check(self, value):
        return value > self.lower_bound

    def __repr__(self) -> str:
        return f"GreaterThan(lower_bound={_shown(self.lower_bound)})"


class _GreaterThanEq(_GreaterThan):
    def check(self, value):
        return value >= self.lower_bound

    def __repr__(self) -> str:
        return f"GreaterThanEq(lower_bound={_shown(self.lower_bound)})"


class _LessThan(Constraint):
    def __init__(self, upper_bound):
        self.upper_bound = upper_bound

    def check(self, value):
        return value < self.upper_bound

    def __repr__(self) -> str:
        return f"LessThan(upper_bound={_shown(self.upper_bound)})"


class _Interval(Constraint):
    def __init__(self, lower_bound, upper_bound):
        self.lower_bound, self.upper_bound = lower_bound, upper_bound

    def check(self, value):
        return logical_and(self.lower_bound <= value, value <= self.upper_bound)

    def __repr__(self) -> str:
        return f"Interval(lower_bound={_shown(self.lower_bound)}, upper_bound={_shown(self.upper_bound)})"


class _HalfOpenInterval(_Interval):
    def check(self, value):
        return logical_and(self.lower_bound <= value, value < self.upper_bound)

    def __repr__(self) -> str:
        return f"HalfOpenInterval(lower_bound={_shown(self.lower_bound)}, upper_bound={_shown(self.upper_bound)})"


class _IntegerInterval(_Interval):
    is_discrete = True

    def check(self, value):
        return logical_and(eq(value % 1, 0), super().check(value))

    def __repr__(self) -> str:
        return f"IntegerInterval(lower_bound={_shown(self.lower_bound)}, upper_bound={_shown(self.upper_bound)})"


class _IntegerGreaterThan(_GreaterThan):
    is_discrete = True

    def check(self, value):
        return logical_and(eq(value % 1, 0), value >= self.lower_bound)

    def __repr__(self) -> str:
        return f"IntegerGreaterThan(lower_bound={_shown(self.lower_bound)})"


class _Multinomial(Constraint):
    """Count vectors: nonnegative entries summing to at most upper_bound."""

    is_discrete, event_dim = True, 1

    def __init__(self, upper_bound):
        self.upper_bound = upper_bound

    def check(self, value):
        return logical_and(all(value >= 0, -1), sum(value, -1) <= self.upper_bound)


class _Simplex(Constraint):
    event_dim = 1

    def check(self, value):
        return logical_and(all(value >= 0, -1), abs(sum(value, -1) - 1) < 1e-6)


class _OneHot(Constraint):
    is_discrete, event_dim = True, 1

    def check(self, value):
        return logical_and(all(_binary(value), -1), eq(sum(value, -1), 1))


class _LowerCholesky(Constraint):
    event_dim = 2

    def check(self, value):
        lower = all(all(eq(tril(value), value), -1), -1)
        return logical_and(lower, all(diagonal(value, 0, -2, -1) > 0, -1))


class _PositiveDefinite(Constraint):
    event_dim = 2

    def check(self, value):
        from ..linalg import eigvalsh

        symmetric = all(all(eq(value, value.mT), -1), -1)
        return logical_and(symmetric, all(eigvalsh(value) > 0, -1))


class _IndependentConstraint(Constraint):
    def __init__(self, base_constraint: Constraint, reinterpreted_batch_ndims: int):
        self.base_constraint, self.reinterpreted_batch_ndims = base_constraint, reinterpreted_batch_ndims
        self.is_discrete = base_constraint.is_discrete
        self.event_dim = base_constraint.event_dim + reinterpreted_batch_ndims

    def check(self, value):
        result = self.base_constraint.check(value)
        for _ in range(self.reinterpreted_batch_ndims):
            result = all(result, -1)
        return result

    def __repr__(self) -> str:
        return f"IndependentConstraint({self.base_constraint!r}, {self.reinterpreted_batch_ndims})"


dependent = _Dependent()
dependent_property = _DependentProperty
independent = _IndependentConstraint
boolean = _Boolean()
one_hot = _OneHot()
real = _Real()
real_vector = independent(real, 1)
positive = _GreaterThan(0.0)
nonnegative = _GreaterThanEq(0.0)
nonnegative_integer = _IntegerGreaterThan(0)
positive_integer = _IntegerGreaterThan(1)
greater_than = _GreaterThan
greater_than_eq = _GreaterThanEq
multinomial = _Multinomial
less_than = _LessThan
interval = _Interval
half_open_interval = _HalfOpenInterval
integer_interval = _IntegerInterval
unit_interval = _Interval(0.0, 1.0)
simplex = _Simplex()
lower_cholesky = _LowerCholesky()
positive_definite = _PositiveDefinite()
