"""Pipeline schedules: how m micro-batches flow through p pipeline stages.

A schedule answers two questions for the cost model: how long a step waits on the
pipeline filling and draining (the bubble), and how many micro-batches' activations
each stage holds at once (its memory), and how many times a micro-batch crosses the
pipeline (``chunks``: its point-to-point sends). 1F1B is :class:`OneFOneB`; Megatron's
interleaved 1F1B, with v model chunks per pipeline rank, is :class:`Interleaved`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from trainwall.optimizer.costmodel.elementwise import minimum


class PipelineSchedule(ABC):
    """The pipeline terms of a step; each method takes a number or a numpy array of m."""

    stages: int
    chunks: int = 1      # model chunks per pipeline rank: a micro-batch crosses the pipeline this many times

    @abstractmethod
    def in_flight(self, stage: int, m):
        """Micro-batches whose activations stage ``stage`` (0 = first) holds at its peak."""

    @abstractmethod
    def saturation(self) -> int:
        """The fewest micro-batches per step at which every stage holds its most in flight:
        memory grows with m up to it and is flat beyond."""

    @abstractmethod
    def bubble_s(self, t_stage: float) -> float:
        """Seconds per step the pipeline spends filling and draining."""

    @abstractmethod
    def bubble_fraction(self, m):
        """The bubble's share of the pipeline's time per step."""


@dataclass(frozen=True)
class OneFOneB(PipelineSchedule):
    """1F1B, one forward one backward (PipeDream-Flush; Narayanan et al. 2021, "Efficient
    Large-Scale Language Model Training on GPU Clusters Using Megatron-LM", section 2.2.1).

    With p stages, m micro-batches per step and t_stage the slowest stage's forward +
    backward time for one micro-batch:

        in flight on stage i = min(p - i, m)     (stage i starts p - i forwards before its first backward)
        bubble               = (p - 1) t_stage   (the paper's t_pb = (p - 1)(t_f + t_b))
        bubble fraction      = (p - 1) / (m + p - 1)

    (the paper's (p - 1) / m is the bubble over the ideal time m t_stage; over the whole
    pipeline time (m + p - 1) t_stage it is the fraction above).
    """

    stages: int

    def in_flight(self, stage: int, m):
        return minimum(self.stages - stage, m)

    def saturation(self) -> int:
        """p: stage 0 holds min(p, m)."""
        return self.stages

    def bubble_s(self, t_stage: float) -> float:
        return (self.stages - 1) * t_stage

    def bubble_fraction(self, m):
        return (self.stages - 1) / (m + self.stages - 1)


@dataclass(frozen=True)
class Interleaved(PipelineSchedule):
    """Interleaved 1F1B (Narayanan et al. 2021, section 2.2.2): each of the p pipeline ranks
    holds v model chunks (``chunks``, v >= 2) of L / (p v) layers, so a micro-batch crosses
    the pipeline v times:

        bubble          = (p - 1) t_stage / v      (the paper's t_pb^int = (p - 1)(t_f + t_b) / v)
        bubble fraction = ((p - 1) / v) / (m + (p - 1) / v)
        sends           = v x 1F1B's, per micro-batch (and the last rank sends on to the first)
        in flight on stage i = min(W_i + 1, m v) / v micro-batches' activations, with Megatron-LM's
                          warm-up W_i = 2 (p - i - 1) + (v - 1) p chunk forwards (megatron/core/
                          pipeline_parallel/schedules.py, forward_backward_pipelining_with_interleaving),
                          each chunk holding 1/v of the stage's activations. On stage 0 that is
                          p (1 + (p - 1)/(p v)): Korthikanti et al. 2022's interleaving factor.

    Megatron requires m to be a multiple of p (checked where the configuration is resolved).
    """

    stages: int
    chunks: int

    def in_flight(self, stage: int, m):
        return minimum(self._warmup(stage) + 1, m * self.chunks) / self.chunks

    def _warmup(self, stage: int) -> int:
        p, v = self.stages, self.chunks
        return 2 * (p - stage - 1) + (v - 1) * p

    def saturation(self) -> int:
        """ceil((W_0 + 1) / v): stage 0, the longest warm-up, holds min(W_0 + 1, m v) chunks;
        above p for v >= 2 (p = 8, v = 2: W_0 = 22, so 12 micro-batches)."""
        return -(-(self._warmup(0) + 1) // self.chunks)

    def bubble_s(self, t_stage: float) -> float:
        return (self.stages - 1) * t_stage / self.chunks

    def bubble_fraction(self, m):
        fill = (self.stages - 1) / self.chunks
        return fill / (m + fill)
