"""Studies: multi-seed training of initializers, and the statistics that compare them.

:class:`Study` / :func:`run_study` (the vmapped population engine), built on the public
population layers (:func:`make_population`, :func:`train_population` with your own step,
:func:`evaluate_population`; :class:`TrainState`, :class:`Population`), callbacks and
metric writers (:class:`Callback`, :class:`MetricWriter`, :class:`TensorBoardWriter`), the
datasets and flax models it trains, and the aggregate statistics that ``jaxinit compare``
(``jaxinit.cli``) reports, which live in :mod:`jaxinit.stats` (their names stay reachable here as
``jaxinit.study.<name>``). Builds on :mod:`jaxinit.stats`, :mod:`jaxinit.rules` and
:mod:`jaxinit.initializers`. Every name here is also ``jaxinit.<name>``.
"""

from jaxinit.stats import Estimate as Estimate
from jaxinit.stats import Interval as Interval
from jaxinit.stats import TimeToTarget as TimeToTarget
from jaxinit.stats import aggregate_intervals as aggregate_intervals
from jaxinit.stats import aggregate_iqm as aggregate_iqm
from jaxinit.stats import aggregate_mean as aggregate_mean
from jaxinit.stats import aggregate_median as aggregate_median
from jaxinit.stats import aggregate_optimality_gap as aggregate_optimality_gap
from jaxinit.stats import bootstrap_ci as bootstrap_ci
from jaxinit.stats import curve_band as curve_band
from jaxinit.stats import first_crossing as first_crossing
from jaxinit.stats import holm as holm
from jaxinit.stats import improvement_interval as improvement_interval
from jaxinit.stats import paired_difference as paired_difference
from jaxinit.stats import paired_t_test as paired_t_test
from jaxinit.stats import performance_profile as performance_profile
from jaxinit.stats import plot_performance_profiles as plot_performance_profiles
from jaxinit.stats import probability_of_improvement as probability_of_improvement
from jaxinit.stats import recommended_reference as recommended_reference
from jaxinit.stats import stratified_bootstrap as stratified_bootstrap
from jaxinit.stats import time_to_target as time_to_target
from jaxinit.stats import verdicts as verdicts
from jaxinit.study._callbacks import Callback as Callback
from jaxinit.study._callbacks import MetricWriter as MetricWriter
from jaxinit.study._callbacks import TensorBoardWriter as TensorBoardWriter
from jaxinit.study._datasets import Dataset as Dataset
from jaxinit.study._datasets import digits as digits
from jaxinit.study._datasets import linear_teacher as linear_teacher
from jaxinit.study._datasets import load_dataset as load_dataset
from jaxinit.study._datasets import mnist1d as mnist1d
from jaxinit.study._datasets import shapeset as shapeset
from jaxinit.study._feed import HostData as HostData
from jaxinit.study._io import json_safe as json_safe
from jaxinit.study._models import ACTIVATIONS as ACTIVATIONS
from jaxinit.study._models import CNN1D as CNN1D
from jaxinit.study._models import MLP as MLP
from jaxinit.study._models import ResNet as ResNet
from jaxinit.study._report import Report as Report
from jaxinit.study._report import format_summary as format_summary
from jaxinit.study._report import report as report
from jaxinit.study._results import StudyResult as StudyResult
from jaxinit.study._spec import Study as Study
from jaxinit.study._study import run_study as run_study
from jaxinit.study.population import Population as Population
from jaxinit.study.population import TrainState as TrainState
from jaxinit.study.population import evaluate_population as evaluate_population
from jaxinit.study.population import make_population as make_population
from jaxinit.study.population import train_population as train_population

__all__ = [
    "ACTIVATIONS",
    "CNN1D",
    "MLP",
    "Callback",
    "Dataset",
    "HostData",
    "MetricWriter",
    "Population",
    "Report",
    "ResNet",
    "Study",
    "StudyResult",
    "TensorBoardWriter",
    "TrainState",
    "digits",
    "evaluate_population",
    "format_summary",
    "json_safe",
    "linear_teacher",
    "load_dataset",
    "make_population",
    "mnist1d",
    "report",
    "run_study",
    "shapeset",
    "train_population",
]
