"""Studies: multi-seed training of initializers, and the statistics that compare them.

:class:`Study` / :func:`run_study` (the vmapped population engine), the datasets and
flax models it trains, ``jaxinit compare`` (:func:`run_compare`), and the aggregate
statistics, which live in :mod:`jaxinit.stats` (their names stay reachable here as
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
from jaxinit.study._compare import CompareConfig as CompareConfig
from jaxinit.study._compare import format_summary as format_summary
from jaxinit.study._compare import run_compare as run_compare
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
from jaxinit.study._study import Study as Study
from jaxinit.study._study import StudyResult as StudyResult
from jaxinit.study._study import run_study as run_study

__all__ = [
    "ACTIVATIONS",
    "CNN1D",
    "MLP",
    "CompareConfig",
    "Dataset",
    "HostData",
    "ResNet",
    "Study",
    "StudyResult",
    "digits",
    "format_summary",
    "json_safe",
    "linear_teacher",
    "load_dataset",
    "mnist1d",
    "run_compare",
    "run_study",
    "shapeset",
]
