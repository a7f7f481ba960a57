"""Pipeline schedules: how m micro-batches flow through p pipeline stages.

A schedule answers two questions for the cost model: how long a step waits on the
pipeline filling and draining (the bubble), and how many micro-batches' activations
each stage holds at once (its memory). Today's schedule is 1F1B; an interleaved
schedule (Narayanan et al. 2021, section 2.2.2: v model chunks per device shrink the
bubble to (p - 1) t_stage / v at v times the point-to-point traffic) would be another
subclass of :class:`PipelineSchedule`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from trainwall.optimizer.costmodel.elementwise import minimum


class PipelineSchedule(ABC):
    """The pipeline terms of a step; each method takes a number or a numpy array of m."""

    stages: int

    @abstractmethod
    def in_flight(self, stage: int, m):
        """Micro-batches whose activations stage ``stage`` (0 = first) holds at its peak."""

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

    def bubble_s(self, t_stage: float) -> float:
        return (self.stages - 1) * t_stage

    def bubble_fraction(self, m):
        return (self.stages - 1) / (m + self.stages - 1)
