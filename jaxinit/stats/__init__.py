"""Statistics over seeds and tasks: estimators, intervals, tests and verdicts, plots.

Beside :mod:`jaxinit.study` (study and the command line import it; it imports neither), on
numpy alone (scipy and matplotlib load on first use). Every name here is also
``jaxinit.<name>`` (and, for the names that lived there before, ``jaxinit.study.<name>``).

Estimators (rliable's): aggregate_iqm, aggregate_mean, aggregate_median,
aggregate_optimality_gap, probability_of_improvement, performance_profile.
Intervals (one type, :class:`Interval`; ``Estimate`` is its old name): Interval, Estimate, aggregate_intervals, bootstrap_ci, curve_band,
improvement_interval, paired_difference, stratified_bootstrap, time_to_target,
TimeToTarget, first_crossing.
Tests and verdicts: family_alphas, holm, paired_t_test, recommended_reference,
sign_flip_test, SignFlipTest, verdicts.
Plots: plot_performance_profiles.
"""

from jaxinit.stats._aggregate import Interval as Interval
from jaxinit.stats._aggregate import SignFlipTest as SignFlipTest
from jaxinit.stats._aggregate import aggregate_intervals as aggregate_intervals
from jaxinit.stats._aggregate import aggregate_iqm as aggregate_iqm
from jaxinit.stats._aggregate import aggregate_mean as aggregate_mean
from jaxinit.stats._aggregate import aggregate_median as aggregate_median
from jaxinit.stats._aggregate import aggregate_optimality_gap as aggregate_optimality_gap
from jaxinit.stats._aggregate import family_alphas as family_alphas
from jaxinit.stats._aggregate import holm as holm
from jaxinit.stats._aggregate import improvement_interval as improvement_interval
from jaxinit.stats._aggregate import paired_t_test as paired_t_test
from jaxinit.stats._aggregate import performance_profile as performance_profile
from jaxinit.stats._aggregate import plot_performance_profiles as plot_performance_profiles
from jaxinit.stats._aggregate import probability_of_improvement as probability_of_improvement
from jaxinit.stats._aggregate import recommended_reference as recommended_reference
from jaxinit.stats._aggregate import sign_flip_test as sign_flip_test
from jaxinit.stats._aggregate import stratified_bootstrap as stratified_bootstrap
from jaxinit.stats._aggregate import verdicts as verdicts
from jaxinit.stats._seeds import Estimate as Estimate
from jaxinit.stats._seeds import TimeToTarget as TimeToTarget
from jaxinit.stats._seeds import bootstrap_ci as bootstrap_ci
from jaxinit.stats._seeds import curve_band as curve_band
from jaxinit.stats._seeds import first_crossing as first_crossing
from jaxinit.stats._seeds import paired_difference as paired_difference
from jaxinit.stats._seeds import time_to_target as time_to_target

__all__ = [
    "Estimate",
    "Interval",
    "SignFlipTest",
    "TimeToTarget",
    "aggregate_intervals",
    "aggregate_iqm",
    "aggregate_mean",
    "aggregate_median",
    "aggregate_optimality_gap",
    "bootstrap_ci",
    "curve_band",
    "family_alphas",
    "first_crossing",
    "holm",
    "improvement_interval",
    "paired_difference",
    "paired_t_test",
    "performance_profile",
    "plot_performance_profiles",
    "probability_of_improvement",
    "recommended_reference",
    "sign_flip_test",
    "stratified_bootstrap",
    "time_to_target",
    "verdicts",
]
