"""jaxinit: weight initializers for JAX and Flax, with vmapped multi-seed convergence studies.

Every initializer is ``init(key, shape, dtype=...) -> jax.Array``, usable as
``kernel_init=`` / ``bias_init=`` in flax.linen and flax.nnx, under jit and vmap. It is a
value (:class:`Init`): equal options give equal, equally hashed initializers, its ``repr`` is
the call that made it, and ``get_config()`` / :func:`from_config` round-trip it as JSON; it
draws exactly the numbers the plain function drew before it was a value.
"""

from importlib.metadata import PackageNotFoundError, version

from jaxinit.cli import use_cpu_cores as use_cpu_cores
from jaxinit.initializers._core import Initializer as Initializer
from jaxinit.initializers._core import constant as constant
from jaxinit.initializers._core import glorot_bengio_standard as glorot_bengio_standard
from jaxinit.initializers._core import glorot_normal as glorot_normal
from jaxinit.initializers._core import glorot_uniform as glorot_uniform
from jaxinit.initializers._core import he_normal as he_normal
from jaxinit.initializers._core import he_uniform as he_uniform
from jaxinit.initializers._core import kaiming_normal as kaiming_normal
from jaxinit.initializers._core import kaiming_uniform as kaiming_uniform
from jaxinit.initializers._core import lecun_normal as lecun_normal
from jaxinit.initializers._core import lecun_uniform as lecun_uniform
from jaxinit.initializers._core import normal as normal
from jaxinit.initializers._core import ones as ones
from jaxinit.initializers._core import ones_init as ones_init
from jaxinit.initializers._core import random_normal as random_normal
from jaxinit.initializers._core import random_truncated_normal as random_truncated_normal
from jaxinit.initializers._core import random_uniform as random_uniform
from jaxinit.initializers._core import truncated_normal as truncated_normal
from jaxinit.initializers._core import uniform as uniform
from jaxinit.initializers._core import variance_scaling as variance_scaling
from jaxinit.initializers._core import xavier_normal as xavier_normal
from jaxinit.initializers._core import xavier_uniform as xavier_uniform
from jaxinit.initializers._core import zeros as zeros
from jaxinit.initializers._core import zeros_init as zeros_init
from jaxinit.initializers._fans import compute_fans as compute_fans
from jaxinit.initializers._fast import fast as fast
from jaxinit.initializers._fast import fast_key as fast_key
from jaxinit.initializers._fast import is_fast_key as is_fast_key
from jaxinit.initializers._keras import stft as stft
from jaxinit.initializers._precision import draw_in_float32 as draw_in_float32
from jaxinit.initializers._registry import Scheme as Scheme
from jaxinit.initializers._registry import get as get
from jaxinit.initializers._registry import names as names
from jaxinit.initializers._registry import register as register
from jaxinit.initializers._registry import scheme as scheme
from jaxinit.initializers._registry import schemes as schemes
from jaxinit.initializers._structured import delta_orthogonal as delta_orthogonal
from jaxinit.initializers._structured import dirac as dirac
from jaxinit.initializers._structured import eye as eye
from jaxinit.initializers._structured import identity as identity
from jaxinit.initializers._structured import orthogonal as orthogonal
from jaxinit.initializers._structured import sparse as sparse
from jaxinit.initializers._structured import torch_sparse as torch_sparse
from jaxinit.initializers._structured import zero_init as zero_init
from jaxinit.initializers._torch import calculate_gain as calculate_gain
from jaxinit.initializers._torch import torch_default_bias as torch_default_bias
from jaxinit.initializers._torch import torch_default_kernel as torch_default_kernel
from jaxinit.initializers._torch import torch_kaiming_normal as torch_kaiming_normal
from jaxinit.initializers._torch import torch_kaiming_uniform as torch_kaiming_uniform
from jaxinit.initializers._torch import torch_normal as torch_normal
from jaxinit.initializers._torch import torch_trunc_normal as torch_trunc_normal
from jaxinit.initializers._torch import torch_uniform as torch_uniform
from jaxinit.initializers._torch import torch_xavier_normal as torch_xavier_normal
from jaxinit.initializers._torch import torch_xavier_uniform as torch_xavier_uniform
from jaxinit.initializers._values import Init as Init
from jaxinit.initializers._values import RuleSet as RuleSet
from jaxinit.initializers._values import from_config as from_config
from jaxinit.rules._layers import LayerFans as LayerFans
from jaxinit.rules._layers import fan_axes as fan_axes
from jaxinit.rules._lsuv import LayerReport as LayerReport
from jaxinit.rules._lsuv import lsuv as lsuv
from jaxinit.rules._mup import BaseShape as BaseShape
from jaxinit.rules._mup import CoordCheck as CoordCheck
from jaxinit.rules._mup import InfShape as InfShape
from jaxinit.rules._mup import base_shapes as base_shapes
from jaxinit.rules._mup import coord_check as coord_check
from jaxinit.rules._mup import infshape_of as infshape_of
from jaxinit.rules._mup import infshapes as infshapes
from jaxinit.rules._mup import lr_multiplier as lr_multiplier
from jaxinit.rules._mup import mup_adam as mup_adam
from jaxinit.rules._mup import mup_attention_fn as mup_attention_fn
from jaxinit.rules._mup import mup_sgd as mup_sgd
from jaxinit.rules._mup import readout_multiplier as readout_multiplier
from jaxinit.rules._mup import scale_by_mup as scale_by_mup
from jaxinit.rules._rules import ContextRule as ContextRule
from jaxinit.rules._rules import LeafInfo as LeafInfo
from jaxinit.rules._rules import any_of as any_of
from jaxinit.rules._rules import explain as explain
from jaxinit.rules._rules import optional as optional
from jaxinit.rules._rules import reinit as reinit
from jaxinit.rules._rulesets import fixup as fixup
from jaxinit.rules._rulesets import gpt2 as gpt2
from jaxinit.rules._rulesets import mup as mup
from jaxinit.rules._rulesets import rezero as rezero
from jaxinit.rules._rulesets import skipinit as skipinit
from jaxinit.rules._rulesets import t_fixup as t_fixup
from jaxinit.rules._rulesets import torch_default_rules as torch_default_rules
from jaxinit.rules._rulesets_models import bert as bert
from jaxinit.rules._rulesets_models import deepnet as deepnet
from jaxinit.rules._rulesets_models import deepnorm_constants as deepnorm_constants
from jaxinit.rules._rulesets_models import depth_scaled as depth_scaled
from jaxinit.rules._rulesets_models import layer_index as layer_index
from jaxinit.rules._rulesets_models import recurrent as recurrent
from jaxinit.rules._rulesets_models import torch_default_layer_rules as torch_default_layer_rules
from jaxinit.rules._rulesets_models import vit as vit
from jaxinit.rules._sharded import init_params as init_params
from jaxinit.rules._sharded import make_init as make_init
from jaxinit.rules._sharded import param_shardings as param_shardings
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
from jaxinit.study._compare import CompareConfig as CompareConfig
from jaxinit.study._compare import run_compare as run_compare
from jaxinit.study._datasets import Dataset as Dataset
from jaxinit.study._datasets import digits as digits
from jaxinit.study._datasets import linear_teacher as linear_teacher
from jaxinit.study._datasets import load_dataset as load_dataset
from jaxinit.study._datasets import mnist1d as mnist1d
from jaxinit.study._datasets import shapeset as shapeset
from jaxinit.study._engine import Study as Study
from jaxinit.study._engine import StudyResult as StudyResult
from jaxinit.study._engine import run_study as run_study
from jaxinit.study._models import ACTIVATIONS as ACTIVATIONS
from jaxinit.study._models import CNN1D as CNN1D
from jaxinit.study._models import MLP as MLP
from jaxinit.study._models import ResNet as ResNet
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

try:
    __version__ = version("jaxinit")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
