"""The four parts a problem plugs into selfiter, and the Problem that ties them to data.

Vocabulary (the paper's, Eq. 1-4):

* ``S: (B, P)``   model parameters: the compact, sampleable description of a state
  (for faces: PCA shape coefficients and a similarity pose).
* ``theta: (B, D)`` location parameters: what the solver updates and what the
  loss is measured on (for faces: the 68 x/y landmark coordinates, flattened).
* ``inputs: (B, ...)`` the observations a state is explained against
  (images, sampled curves); always a tensor whose first dimension is the batch.

All methods are batched and device-agnostic: they run on whatever device their
tensor arguments live on and never loop over the batch in Python.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import nn

__all__ = [
    "ParameterModel",
    "Sampler",
    "FeatureExtractor",
    "LearnedFeatureExtractor",
    "Context",
    "Auxiliary",
    "Regressor",
    "ProblemData",
    "View",
    "Problem",
]


class ParameterModel(ABC):
    """Converts between model parameters ``S: (B, P)`` and locations ``theta: (B, D)``.

    A model may have state fitted from training data (a PCA basis, a mean
    pose). That state is whatever :meth:`state_dict` returns; it is saved in
    every checkpoint so a trained solver never needs the training set again.
    """

    #: names of the P dimensions of S, in order
    s_names: tuple[str, ...]
    #: unit of each dimension of S (free text: "px", "rad", "1", ...)
    s_units: tuple[str, ...]
    #: names of the D dimensions of theta, in order
    theta_names: tuple[str, ...]
    #: unit of theta (one unit for all dimensions)
    theta_unit: str

    @property
    def s_dim(self) -> int:
        """P, the number of model parameters."""
        return len(self.s_names)

    @property
    def theta_dim(self) -> int:
        """D, the number of location parameters."""
        return len(self.theta_names)

    def fit_data(self, theta_train: torch.Tensor) -> None:
        """Fit the model's state from training locations ``theta_train: (N, D)``.

        The default does nothing (a model with no fitted state)."""

    @abstractmethod
    def theta(self, s: torch.Tensor) -> torch.Tensor:
        """Locations of model parameters: ``s: (B, P) -> theta: (B, D)`` (Eq. 3)."""

    @abstractmethod
    def fit(self, theta: torch.Tensor) -> torch.Tensor:
        """Model parameters best explaining ``theta: (B, D) -> s: (B, P)``.

        For a ``theta`` in the model's range, ``theta(fit(theta)) == theta``; for
        any ``s``, ``fit(theta(s)) == s`` up to the model's symmetries."""

    def difference(self, theta_to: torch.Tensor, theta_from: torch.Tensor) -> torch.Tensor:
        """The increment taking ``theta_from`` to ``theta_to``, both ``(B, D)``: the
        regression target (Algorithm 1, line 7). Default ``theta_to - theta_from``;
        a model with periodic dimensions (angles) returns the shortest way round."""
        return theta_to - theta_from

    @abstractmethod
    def s_mean(self) -> torch.Tensor:
        """The mean state S0 over the training data: ``(P,)``."""

    @abstractmethod
    def s_std(self) -> torch.Tensor:
        """Spread of each dimension of S over the training data: ``(P,)``, > 0.

        Samplers express their sigmas in these units, so that ``sigma = 0.2``
        means the same thing for a rotation (rad) and a translation (px)."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Fitted state as named tensors (saved in checkpoints)."""
        return {}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore the state returned by :meth:`state_dict`."""
        if state:
            raise ValueError(f"{type(self).__name__} has no fitted state, got keys {sorted(state)}")


class Sampler(ABC):
    """Draws training states around the truth and around the mean (Algorithm 1)."""

    @abstractmethod
    def sample(
        self, model: ParameterModel, s_gt: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """One state per ground truth: ``s_gt: (B, P) -> s: (B, P)``.

        All randomness comes from ``generator`` (on ``s_gt``'s device), so a
        seeded generator gives the same draws on every run."""


#: what :meth:`FeatureExtractor.encode` returns: a tensor, or a tuple of tensors, each
#: with the batch as its first dimension; or a structure of the extractor's own, which
#: then overrides :meth:`FeatureExtractor.select` and :meth:`FeatureExtractor.detach`
Context = Any


class FeatureExtractor(ABC):
    """Observes the inputs at the current state.

    Two steps: :meth:`encode` runs once per input, before the solver's first
    iteration; :meth:`features` runs at every iteration on that cached context.
    The default encoding is the inputs themselves, so an extractor that reads
    its inputs directly (patches, residuals) implements :meth:`features` only.
    An extractor with learned weights is also an :class:`torch.nn.Module`
    (see :class:`LearnedFeatureExtractor`); it is trained with the regressor.
    """

    def encode(self, inputs: torch.Tensor) -> Context:
        """``inputs: (B, ...) -> context`` (a tensor or tuple of tensors, batch first),
        computed once per solve and reused at every iteration. Default: ``inputs``."""
        return inputs

    @abstractmethod
    def features(self, context: Context, theta: torch.Tensor) -> torch.Tensor:
        """``context`` of B inputs (see :meth:`encode`), ``theta: (B, D) ->
        features: (B, *feature_shape)``."""

    @abstractmethod
    def feature_shape(self, input_shape: tuple[int, ...], theta_dim: int) -> tuple[int, ...]:
        """Shape of one sample's features for inputs of one-sample shape ``input_shape``."""

    @staticmethod
    def select(context: Context, index: torch.Tensor) -> Context:
        """The rows ``index: (A,)`` (long) of a context: of each tensor in a tuple, or of
        the tensor itself. Used to follow a subset of the batch, or to repeat an
        input's encoding for several states of it."""
        if isinstance(context, tuple):
            return tuple(c[index] for c in context)
        return context[index]

    def repeat(self, context: Context, rows: torch.Tensor) -> Context:
        """The context of B inputs for M states of each, grouped by input: ``rows: (B*M,)``
        long is ``arange(B).repeat_interleave(M)``, the input each state reads. Default:
        :meth:`select` of those rows, a copy. An extractor whose :meth:`features` can read
        one encoding for several states overrides it to share the context instead: for
        a large context (a cost volume) the M copies cost more than the step itself."""
        return self.select(context, rows)

    @staticmethod
    def detach(context: Context) -> Context:
        """The context cut from the autograd graph (same values, no gradient)."""
        if isinstance(context, tuple):
            return tuple(c.detach() for c in context)
        return context.detach()


class LearnedFeatureExtractor(FeatureExtractor, nn.Module):
    """A feature extractor with weights (e.g. a CNN encoder run once per input).

    Its parameters are trained together with the regressor, saved in the
    checkpoint under ``extractor.*`` and exported with the solver. Construct it
    like any extractor, ``factory(**params)``; call ``nn.Module.__init__``
    (through ``super().__init__()``) before assigning layers."""

    def __init__(self) -> None:
        nn.Module.__init__(self)


#: ``target: (B, D) -> (pred: (B, K), goal: (B, K))``: a regressor's richer prediction and
#: what it should have been, given the increment's target (see :meth:`Regressor.forward_train`)
Auxiliary = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class Regressor(nn.Module):
    """Maps features to an increment: ``features: (B, *feature_shape) -> delta_theta: (B, D)``.

    Constructed by its factory as ``factory(feature_shape=..., theta_dim=..., **params)``.
    """

    feature_shape: tuple[int, ...]
    theta_dim: int

    def forward_train(self, features: torch.Tensor) -> tuple[torch.Tensor, Auxiliary | None]:
        """The training forward: ``(delta_theta: (B, D), auxiliary)``, ``auxiliary`` None
        (the default) or an :data:`Auxiliary`.

        A regressor whose increment is computed from a richer prediction (per-point
        flows that a least-squares fit turns into a homography, say) can supervise that
        prediction directly: its ``auxiliary`` maps the increment's target to the
        prediction and what it should have been, and with ``train.auxiliary_weight`` > 0
        the trainer adds ``weight * loss(pred, goal)`` (the run's loss) to the loss on
        the increment. K targets per state instead of D teach the richer part faster."""
        return self(features), None


@dataclass
class ProblemData:
    """A split of a problem's data set, already on one device.

    ``inputs: (N, ...)`` and ``theta_gt: (N, D)`` are indexed together; ``meta``
    holds per-sample extras (tensors indexed like ``inputs``, or lists of N
    items such as file names) that metrics and reports may need. ``source``, where
    the problem reads from disk, says from where (a folder), for the reports' headers.
    """

    inputs: torch.Tensor
    theta_gt: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def __post_init__(self) -> None:
        if self.inputs.shape[0] != self.theta_gt.shape[0]:
            raise ValueError(
                f"inputs has {self.inputs.shape[0]} samples but theta_gt has {self.theta_gt.shape[0]}"
            )

    def __len__(self) -> int:
        return int(self.theta_gt.shape[0])

    def to(self, device: torch.device | str) -> "ProblemData":
        """A copy with every tensor (inputs, theta_gt and tensor metas) on ``device``."""
        meta = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.meta.items()}
        return ProblemData(self.inputs.to(device), self.theta_gt.to(device), meta, self.source)

    def subset(self, index: torch.Tensor) -> "ProblemData":
        """The samples at ``index: (M,)`` (a long tensor), metas included."""
        idx_list = index.tolist()
        meta: dict[str, Any] = {}
        for k, v in self.meta.items():
            if isinstance(v, torch.Tensor):
                meta[k] = v[index.to(v.device)]
            else:
                meta[k] = [v[i] for i in idx_list]
        return ProblemData(self.inputs[index.to(self.inputs.device)],
                           self.theta_gt[index.to(self.theta_gt.device)], meta, self.source)


class View(ABC):
    """A symmetry of a problem, for averaging solves at test time (``solver.tta``).

    A view transforms the inputs (a face mirrored left to right) and maps theta into
    and out of the transformed inputs' frame (the mirrored face's points, renumbered so
    that each index keeps its meaning). Solving the view's inputs from the view of the
    start and mapping the solution back answers the same question as the plain solve,
    with other errors: the mean of the two is usually nearer the truth. Both theta
    maps are affine in theta for the mean to make sense."""

    #: a short name, shown in reports (``"mirror"``)
    name: str

    @abstractmethod
    def inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """The transformed inputs: ``(B, ...) -> (B, ...)``, same shape and dtype."""

    @abstractmethod
    def theta(self, theta: torch.Tensor) -> torch.Tensor:
        """A state of the inputs as the same state of the view: ``(B, D) -> (B, D)``."""

    @abstractmethod
    def theta_back(self, theta: torch.Tensor) -> torch.Tensor:
        """A state of the view as the same state of the inputs: ``(B, D) -> (B, D)``,
        the inverse of :meth:`theta`."""


class Problem(ABC):
    """A problem: where its data comes from, how to augment it, how to score a solve."""

    #: names of the splits :meth:`load` accepts
    splits: tuple[str, ...]

    @abstractmethod
    def load(self, split: str) -> ProblemData:
        """Load one split (on the CPU). Raise :class:`selfiter.errors.DataError`
        naming the missing file or folder when the data is not there."""

    def augment(
        self, inputs: torch.Tensor, theta: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training-time augmentation of a batch, ``(inputs, theta) -> (inputs, theta)``.

        Default: none."""
        return inputs, theta

    @abstractmethod
    def metrics(self, theta: torch.Tensor, data: ProblemData) -> dict[str, float]:
        """Scores of predictions ``theta: (N, D)`` against ``data``. The first
        key is the headline metric (lower is better) shown in progress bars."""

    def test_views(self) -> tuple[View, ...]:
        """The problem's symmetries that a solve may be averaged over at test time
        (``solver.tta``; see :class:`View`), besides the inputs as they are. Default: none,
        and ``solver.tta`` is then refused."""
        return ()

    def predict(self, solver: Any, raw: Any, **options: Any) -> Any:
        """Apply a trained solver (a :class:`selfiter.api.TrainedSolver`) to raw,
        unprepared input (a photo, a recorded curve) and return plain results.

        This is what ``TrainedSolver.predict`` calls. Default: not supported."""
        raise NotImplementedError(f"problem {type(self).__name__} does not predict on raw input")

    def report(self, trajectory: torch.Tensor, data: ProblemData, out_dir: str) -> list[str]:
        """Write plots for a solve (``trajectory: (K+1, N, D)``) into ``out_dir``;
        return the paths written. Default: none."""
        return []
