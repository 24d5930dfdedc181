"""jaxinit: weight initializers for JAX and Flax, with vmapped multi-seed convergence studies.

Every initializer is ``init(key, shape, dtype=...) -> jax.Array``, usable as
``kernel_init=`` / ``bias_init=`` in flax.linen and flax.nnx, under jit and vmap. It is a
value (:class:`Init`): equal options give equal, equally hashed initializers, its ``repr`` is
the call that made it, and ``get_config()`` / :func:`from_config` round-trip it as JSON; it
draws exactly the numbers the plain function drew before it was a value.

The package is layered; every import points down (cli -> theory -> study -> stats ->
rules -> initializers), and each layer's names are also top-level ``jaxinit.<name>``.
``jaxinit.initializers`` and ``jaxinit.rules`` load with the package; ``jaxinit.stats``,
``jaxinit.study`` and ``jaxinit.theory`` (flax, optax) load on first use of one of their names.

Initializers (``jaxinit.initializers``):
  calculate_gain, compute_fans, constant, delta_orthogonal, dirac, draw_in_float32, eye,
  fast, fast_key, from_config, get, glorot_bengio_standard, glorot_normal, glorot_uniform,
  he_normal, he_uniform, identity, Init, Initializer, is_fast_key, kaiming_normal,
  kaiming_uniform, lecun_normal, lecun_uniform, names, normal, ones, ones_init, orthogonal,
  random_normal, random_truncated_normal, random_uniform, register, register_function,
  RuleSet, Scheme, scheme, scheme_names, schemes, sparse, stft, torch_default_bias,
  torch_default_kernel, torch_kaiming_normal,
  torch_kaiming_uniform, torch_normal, torch_sparse, torch_trunc_normal, torch_uniform,
  torch_xavier_normal, torch_xavier_uniform, truncated_normal, uniform, variance_scaling,
  xavier_normal, xavier_uniform, zer_o, zero_init, zeros, zeros_init

Rules for whole models (``jaxinit.rules``):
  any_of, base_shapes, BaseShape, bert, ContextRule, convnext, coord_check, CoordCheck,
  deepnet, deepnorm_constants, depth_scaled, efficientnet, explain, fan_axes, fixup, gpt2,
  InfShape, infshape_of, infshapes, init_params, layer_index, LayerFans, LayerReport,
  LeafInfo, llama, lr_multiplier, lsuv, make_init, mobilenet, mup, mup_adam,
  mup_attention_fn, mup_process_heads, mup_sgd, optional, param_shardings,
  readout_multiplier, recurrent, reinit, resnet, rezero, roberta, scale_by_mup,
  ShadowedRuleWarning, skipinit, t5,
  t_fixup, torch_default_layer_rules, torch_default_rules, vit

Statistics over seeds and tasks (``jaxinit.stats``; also ``jaxinit.study.<name>``):
  aggregate_intervals, aggregate_iqm, aggregate_mean, aggregate_median,
  aggregate_optimality_gap, bootstrap_ci, curve_band, Estimate, family_alphas,
  first_crossing, holm, improvement_interval, Interval, paired_difference, paired_t_test,
  performance_profile, plot_performance_profiles, probability_of_improvement,
  recommended_reference, sign_flip_test, SignFlipTest, stratified_bootstrap, time_to_target,
  TimeToTarget, verdicts

Studies (``jaxinit.study``):
  ACTIVATIONS, CNN1D, Dataset, digits, HostData, json_safe, linear_teacher, load_dataset, MLP,
  mnist1d, ResNet, run_study, shapeset, Study, StudyResult
  Reporting a study: report, Report, format_summary
  Populations with your own training step: evaluate_population, make_population,
  Population, train_population, TrainState; callbacks: Callback, MetricWriter,
  TensorBoardWriter

Theory (``jaxinit.theory``):
  c_star, chi, correlation_map, critical_gain, critical_weight_variance, diagnose,
  length_map, mean_field, MeanField, plot_variance_by_depth, predict_propagation, propagate,
  Propagation, propagation_table, q_star

The command line (``jaxinit.cli``, loaded on first use; the library never imports it):
  CompareConfig, run_compare, use_cpu_cores (its report: format_summary, from jaxinit.study)
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from jaxinit import initializers, rules
from jaxinit.initializers import Init as Init
from jaxinit.initializers import Initializer as Initializer
from jaxinit.initializers import RuleSet as RuleSet
from jaxinit.initializers import Scheme as Scheme
from jaxinit.initializers import calculate_gain as calculate_gain
from jaxinit.initializers import compute_fans as compute_fans
from jaxinit.initializers import constant as constant
from jaxinit.initializers import delta_orthogonal as delta_orthogonal
from jaxinit.initializers import dirac as dirac
from jaxinit.initializers import draw_in_float32 as draw_in_float32
from jaxinit.initializers import eye as eye
from jaxinit.initializers import fast as fast
from jaxinit.initializers import fast_key as fast_key
from jaxinit.initializers import from_config as from_config
from jaxinit.initializers import get as get
from jaxinit.initializers import glorot_bengio_standard as glorot_bengio_standard
from jaxinit.initializers import glorot_normal as glorot_normal
from jaxinit.initializers import glorot_uniform as glorot_uniform
from jaxinit.initializers import he_normal as he_normal
from jaxinit.initializers import he_uniform as he_uniform
from jaxinit.initializers import identity as identity
from jaxinit.initializers import is_fast_key as is_fast_key
from jaxinit.initializers import kaiming_normal as kaiming_normal
from jaxinit.initializers import kaiming_uniform as kaiming_uniform
from jaxinit.initializers import lecun_normal as lecun_normal
from jaxinit.initializers import lecun_uniform as lecun_uniform
from jaxinit.initializers import names as names
from jaxinit.initializers import normal as normal
from jaxinit.initializers import ones as ones
from jaxinit.initializers import ones_init as ones_init
from jaxinit.initializers import orthogonal as orthogonal
from jaxinit.initializers import random_normal as random_normal
from jaxinit.initializers import random_truncated_normal as random_truncated_normal
from jaxinit.initializers import random_uniform as random_uniform
from jaxinit.initializers import register as register
from jaxinit.initializers import register_function as register_function
from jaxinit.initializers import scheme as scheme
from jaxinit.initializers import scheme_names as scheme_names
from jaxinit.initializers import schemes as schemes
from jaxinit.initializers import sparse as sparse
from jaxinit.initializers import stft as stft
from jaxinit.initializers import torch_default_bias as torch_default_bias
from jaxinit.initializers import torch_default_kernel as torch_default_kernel
from jaxinit.initializers import torch_kaiming_normal as torch_kaiming_normal
from jaxinit.initializers import torch_kaiming_uniform as torch_kaiming_uniform
from jaxinit.initializers import torch_normal as torch_normal
from jaxinit.initializers import torch_sparse as torch_sparse
from jaxinit.initializers import torch_trunc_normal as torch_trunc_normal
from jaxinit.initializers import torch_uniform as torch_uniform
from jaxinit.initializers import torch_xavier_normal as torch_xavier_normal
from jaxinit.initializers import torch_xavier_uniform as torch_xavier_uniform
from jaxinit.initializers import truncated_normal as truncated_normal
from jaxinit.initializers import uniform as uniform
from jaxinit.initializers import variance_scaling as variance_scaling
from jaxinit.initializers import xavier_normal as xavier_normal
from jaxinit.initializers import xavier_uniform as xavier_uniform
from jaxinit.initializers import zer_o as zer_o
from jaxinit.initializers import zero_init as zero_init
from jaxinit.initializers import zeros as zeros
from jaxinit.initializers import zeros_init as zeros_init
from jaxinit.rules import BaseShape as BaseShape
from jaxinit.rules import ContextRule as ContextRule
from jaxinit.rules import CoordCheck as CoordCheck
from jaxinit.rules import InfShape as InfShape
from jaxinit.rules import LayerFans as LayerFans
from jaxinit.rules import LayerReport as LayerReport
from jaxinit.rules import LeafInfo as LeafInfo
from jaxinit.rules import ShadowedRuleWarning as ShadowedRuleWarning
from jaxinit.rules import any_of as any_of
from jaxinit.rules import base_shapes as base_shapes
from jaxinit.rules import bert as bert
from jaxinit.rules import convnext as convnext
from jaxinit.rules import coord_check as coord_check
from jaxinit.rules import deepnet as deepnet
from jaxinit.rules import deepnorm_constants as deepnorm_constants
from jaxinit.rules import depth_scaled as depth_scaled
from jaxinit.rules import efficientnet as efficientnet
from jaxinit.rules import explain as explain
from jaxinit.rules import fan_axes as fan_axes
from jaxinit.rules import fixup as fixup
from jaxinit.rules import gpt2 as gpt2
from jaxinit.rules import infshape_of as infshape_of
from jaxinit.rules import infshapes as infshapes
from jaxinit.rules import init_params as init_params
from jaxinit.rules import layer_index as layer_index
from jaxinit.rules import llama as llama
from jaxinit.rules import lr_multiplier as lr_multiplier
from jaxinit.rules import lsuv as lsuv
from jaxinit.rules import make_init as make_init
from jaxinit.rules import mobilenet as mobilenet
from jaxinit.rules import mup as mup
from jaxinit.rules import mup_adam as mup_adam
from jaxinit.rules import mup_attention_fn as mup_attention_fn
from jaxinit.rules import mup_process_heads as mup_process_heads
from jaxinit.rules import mup_sgd as mup_sgd
from jaxinit.rules import optional as optional
from jaxinit.rules import param_shardings as param_shardings
from jaxinit.rules import readout_multiplier as readout_multiplier
from jaxinit.rules import recurrent as recurrent
from jaxinit.rules import reinit as reinit
from jaxinit.rules import resnet as resnet
from jaxinit.rules import rezero as rezero
from jaxinit.rules import roberta as roberta
from jaxinit.rules import scale_by_mup as scale_by_mup
from jaxinit.rules import skipinit as skipinit
from jaxinit.rules import t5 as t5
from jaxinit.rules import t_fixup as t_fixup
from jaxinit.rules import torch_default_layer_rules as torch_default_layer_rules
from jaxinit.rules import torch_default_rules as torch_default_rules
from jaxinit.rules import vit as vit

if TYPE_CHECKING:  # loaded lazily below; listed here for type checkers
    from jaxinit.cli import CompareConfig as CompareConfig
    from jaxinit.cli import run_compare as run_compare
    from jaxinit.cli import use_cpu_cores as use_cpu_cores
    from jaxinit.stats import Estimate as Estimate
    from jaxinit.stats import Interval as Interval
    from jaxinit.stats import SignFlipTest as SignFlipTest
    from jaxinit.stats import TimeToTarget as TimeToTarget
    from jaxinit.stats import aggregate_intervals as aggregate_intervals
    from jaxinit.stats import aggregate_iqm as aggregate_iqm
    from jaxinit.stats import aggregate_mean as aggregate_mean
    from jaxinit.stats import aggregate_median as aggregate_median
    from jaxinit.stats import aggregate_optimality_gap as aggregate_optimality_gap
    from jaxinit.stats import bootstrap_ci as bootstrap_ci
    from jaxinit.stats import curve_band as curve_band
    from jaxinit.stats import family_alphas as family_alphas
    from jaxinit.stats import first_crossing as first_crossing
    from jaxinit.stats import holm as holm
    from jaxinit.stats import improvement_interval as improvement_interval
    from jaxinit.stats import paired_difference as paired_difference
    from jaxinit.stats import paired_t_test as paired_t_test
    from jaxinit.stats import performance_profile as performance_profile
    from jaxinit.stats import plot_performance_profiles as plot_performance_profiles
    from jaxinit.stats import probability_of_improvement as probability_of_improvement
    from jaxinit.stats import recommended_reference as recommended_reference
    from jaxinit.stats import sign_flip_test as sign_flip_test
    from jaxinit.stats import stratified_bootstrap as stratified_bootstrap
    from jaxinit.stats import time_to_target as time_to_target
    from jaxinit.stats import verdicts as verdicts
    from jaxinit.study import ACTIVATIONS as ACTIVATIONS
    from jaxinit.study import CNN1D as CNN1D
    from jaxinit.study import MLP as MLP
    from jaxinit.study import Callback as Callback
    from jaxinit.study import Dataset as Dataset
    from jaxinit.study import HostData as HostData
    from jaxinit.study import MetricWriter as MetricWriter
    from jaxinit.study import Population as Population
    from jaxinit.study import Report as Report
    from jaxinit.study import ResNet as ResNet
    from jaxinit.study import Study as Study
    from jaxinit.study import StudyResult as StudyResult
    from jaxinit.study import TensorBoardWriter as TensorBoardWriter
    from jaxinit.study import TrainState as TrainState
    from jaxinit.study import digits as digits
    from jaxinit.study import evaluate_population as evaluate_population
    from jaxinit.study import format_summary as format_summary
    from jaxinit.study import json_safe as json_safe
    from jaxinit.study import linear_teacher as linear_teacher
    from jaxinit.study import load_dataset as load_dataset
    from jaxinit.study import make_population as make_population
    from jaxinit.study import mnist1d as mnist1d
    from jaxinit.study import report as report
    from jaxinit.study import run_study as run_study
    from jaxinit.study import shapeset as shapeset
    from jaxinit.study import train_population as train_population
    from jaxinit.theory import MeanField as MeanField
    from jaxinit.theory import Propagation as Propagation
    from jaxinit.theory import c_star as c_star
    from jaxinit.theory import chi as chi
    from jaxinit.theory import correlation_map as correlation_map
    from jaxinit.theory import critical_gain as critical_gain
    from jaxinit.theory import critical_weight_variance as critical_weight_variance
    from jaxinit.theory import diagnose as diagnose
    from jaxinit.theory import length_map as length_map
    from jaxinit.theory import mean_field as mean_field
    from jaxinit.theory import plot_variance_by_depth as plot_variance_by_depth
    from jaxinit.theory import predict_propagation as predict_propagation
    from jaxinit.theory import propagate as propagate
    from jaxinit.theory import propagation_table as propagation_table
    from jaxinit.theory import q_star as q_star

try:
    __version__ = version("jaxinit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

# The study and theory layers import flax and optax: load them on first use, so that
# ``import jaxinit`` (and ``jaxinit.initializers``) needs jax and numpy only.
_LAZY = {
    "Interval": "jaxinit.stats",
    "aggregate_intervals": "jaxinit.stats",
    "aggregate_iqm": "jaxinit.stats",
    "aggregate_mean": "jaxinit.stats",
    "aggregate_median": "jaxinit.stats",
    "aggregate_optimality_gap": "jaxinit.stats",
    "holm": "jaxinit.stats",
    "family_alphas": "jaxinit.stats",
    "sign_flip_test": "jaxinit.stats",
    "SignFlipTest": "jaxinit.stats",
    "improvement_interval": "jaxinit.stats",
    "paired_t_test": "jaxinit.stats",
    "performance_profile": "jaxinit.stats",
    "plot_performance_profiles": "jaxinit.stats",
    "probability_of_improvement": "jaxinit.stats",
    "recommended_reference": "jaxinit.stats",
    "stratified_bootstrap": "jaxinit.stats",
    "verdicts": "jaxinit.stats",
    "Dataset": "jaxinit.study",
    "HostData": "jaxinit.study",
    "digits": "jaxinit.study",
    "linear_teacher": "jaxinit.study",
    "load_dataset": "jaxinit.study",
    "mnist1d": "jaxinit.study",
    "shapeset": "jaxinit.study",
    "Study": "jaxinit.study",
    "StudyResult": "jaxinit.study",
    "run_study": "jaxinit.study",
    "Report": "jaxinit.study",
    "report": "jaxinit.study",
    "format_summary": "jaxinit.study",
    "Callback": "jaxinit.study",
    "MetricWriter": "jaxinit.study",
    "TensorBoardWriter": "jaxinit.study",
    "Population": "jaxinit.study",
    "TrainState": "jaxinit.study",
    "evaluate_population": "jaxinit.study",
    "make_population": "jaxinit.study",
    "train_population": "jaxinit.study",
    "ACTIVATIONS": "jaxinit.study",
    "Estimate": "jaxinit.stats",
    "TimeToTarget": "jaxinit.stats",
    "bootstrap_ci": "jaxinit.stats",
    "curve_band": "jaxinit.stats",
    "first_crossing": "jaxinit.stats",
    "paired_difference": "jaxinit.stats",
    "time_to_target": "jaxinit.stats",
    "json_safe": "jaxinit.study",
    "CNN1D": "jaxinit.study",
    "MLP": "jaxinit.study",
    "ResNet": "jaxinit.study",
    "diagnose": "jaxinit.theory",
    "plot_variance_by_depth": "jaxinit.theory",
    "propagate": "jaxinit.theory",
    "propagation_table": "jaxinit.theory",
    "MeanField": "jaxinit.theory",
    "Propagation": "jaxinit.theory",
    "c_star": "jaxinit.theory",
    "chi": "jaxinit.theory",
    "correlation_map": "jaxinit.theory",
    "critical_gain": "jaxinit.theory",
    "critical_weight_variance": "jaxinit.theory",
    "length_map": "jaxinit.theory",
    "mean_field": "jaxinit.theory",
    "predict_propagation": "jaxinit.theory",
    "q_star": "jaxinit.theory",
    # the command line's names (the application on top; nothing in the library imports it)
    "CompareConfig": "jaxinit.cli",
    "run_compare": "jaxinit.cli",
    "use_cpu_cores": "jaxinit.cli",
}
_SUBPACKAGES = ("stats", "study", "theory", "cli")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return import_module(f"jaxinit.{name}")
    raise AttributeError(f"module 'jaxinit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBPACKAGES))


# Every public name, grouped by layer in the module docstring: the eager layers' own lists,
# the lazily loaded names and the CLI's process setting.
__all__ = sorted({*initializers.__all__, *rules.__all__, *_LAZY})
