"""Studies: multi-seed training of initializers, and the statistics that compare them.

:class:`Study` / :func:`run_study` (the vmapped population engine), the datasets and
flax models it trains, and the aggregate statistics (interval estimates, performance
profiles, verdicts) that ``jaxinit compare`` (``jaxinit.cli``) reports. Builds on
:mod:`jaxinit.rules` and :mod:`jaxinit.initializers`. Every name here is also
``jaxinit.<name>``.
"""

from jaxinit.study._aggregate import Interval as Interval
from jaxinit.study._aggregate import aggregate_intervals as aggregate_intervals
from jaxinit.study._aggregate import aggregate_iqm as aggregate_iqm
from jaxinit.study._aggregate import aggregate_mean as aggregate_mean
from jaxinit.study._aggregate import aggregate_median as aggregate_median
from jaxinit.study._aggregate import aggregate_optimality_gap as aggregate_optimality_gap
from jaxinit.study._aggregate import holm as holm
from jaxinit.study._aggregate import improvement_interval as improvement_interval
from jaxinit.study._aggregate import paired_t_test as paired_t_test
from jaxinit.study._aggregate import performance_profile as performance_profile
from jaxinit.study._aggregate import plot_performance_profiles as plot_performance_profiles
from jaxinit.study._aggregate import probability_of_improvement as probability_of_improvement
from jaxinit.study._aggregate import recommended_reference as recommended_reference
from jaxinit.study._aggregate import stratified_bootstrap as stratified_bootstrap
from jaxinit.study._aggregate import verdicts as verdicts
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
from jaxinit.study._stats import Estimate as Estimate
from jaxinit.study._stats import TimeToTarget as TimeToTarget
from jaxinit.study._stats import bootstrap_ci as bootstrap_ci
from jaxinit.study._stats import curve_band as curve_band
from jaxinit.study._stats import first_crossing as first_crossing
from jaxinit.study._stats import paired_difference as paired_difference
from jaxinit.study._stats import time_to_target as time_to_target
from jaxinit.study._study import Study as Study
from jaxinit.study._study import StudyResult as StudyResult
from jaxinit.study._study import run_study as run_study

__all__ = [
    "ACTIVATIONS",
    "CNN1D",
    "MLP",
    "Dataset",
    "Estimate",
    "HostData",
    "Interval",
    "ResNet",
    "Study",
    "StudyResult",
    "TimeToTarget",
    "aggregate_intervals",
    "aggregate_iqm",
    "aggregate_mean",
    "aggregate_median",
    "aggregate_optimality_gap",
    "bootstrap_ci",
    "curve_band",
    "digits",
    "first_crossing",
    "holm",
    "improvement_interval",
    "json_safe",
    "linear_teacher",
    "load_dataset",
    "mnist1d",
    "paired_difference",
    "paired_t_test",
    "performance_profile",
    "plot_performance_profiles",
    "probability_of_improvement",
    "recommended_reference",
    "run_study",
    "shapeset",
    "stratified_bootstrap",
    "time_to_target",
    "verdicts",
]
