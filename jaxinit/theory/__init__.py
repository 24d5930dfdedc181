"""Theory: mean-field signal propagation and measured diagnostics.

Length and correlation maps, fixed points and critical initializations
(:func:`mean_field`), and :func:`propagate` / :func:`diagnose`, which measure a model's
per-layer statistics against those predictions. Builds on :mod:`jaxinit.study` (its
models and activations) and below. Every name here is also ``jaxinit.<name>``.
"""

from jaxinit.theory._diagnostics import diagnose as diagnose
from jaxinit.theory._diagnostics import plot_variance_by_depth as plot_variance_by_depth
from jaxinit.theory._diagnostics import propagate as propagate
from jaxinit.theory._diagnostics import propagation_table as propagation_table
from jaxinit.theory._meanfield import MeanField as MeanField
from jaxinit.theory._meanfield import Propagation as Propagation
from jaxinit.theory._meanfield import c_star as c_star
from jaxinit.theory._meanfield import chi as chi
from jaxinit.theory._meanfield import correlation_map as correlation_map
from jaxinit.theory._meanfield import critical_gain as critical_gain
from jaxinit.theory._meanfield import critical_weight_variance as critical_weight_variance
from jaxinit.theory._meanfield import length_map as length_map
from jaxinit.theory._meanfield import mean_field as mean_field
from jaxinit.theory._meanfield import predict_propagation as predict_propagation
from jaxinit.theory._meanfield import q_star as q_star

__all__ = [
    "MeanField",
    "Propagation",
    "c_star",
    "chi",
    "correlation_map",
    "critical_gain",
    "critical_weight_variance",
    "diagnose",
    "length_map",
    "mean_field",
    "plot_variance_by_depth",
    "predict_propagation",
    "propagate",
    "propagation_table",
    "q_star",
]
