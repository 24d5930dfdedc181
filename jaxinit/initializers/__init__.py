"""Initializers: ``init(key, shape, dtype) -> jax.Array`` values and the registry.

The bottom layer of jaxinit: jax and numpy only (no flax, optax, pandas or matplotlib).
The core (variance scaling, constants, random), fans and layouts, PyTorch's and Keras'
names, structured schemes (orthogonal, identity, sparse, ...), the fast path, mixed
precision, and the registry behind :func:`get`. Every name here is also ``jaxinit.<name>``.
"""

from jaxinit._config import from_config as from_config
from jaxinit._config import register_function as register_function
from jaxinit._fans import compute_fans as compute_fans
from jaxinit._types import Initializer as Initializer
from jaxinit._values import Init as Init
from jaxinit._values import RuleSet as RuleSet
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

__all__ = [
    "Init",
    "Initializer",
    "RuleSet",
    "Scheme",
    "calculate_gain",
    "compute_fans",
    "constant",
    "delta_orthogonal",
    "dirac",
    "draw_in_float32",
    "eye",
    "fast",
    "fast_key",
    "from_config",
    "get",
    "glorot_bengio_standard",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "identity",
    "is_fast_key",
    "kaiming_normal",
    "kaiming_uniform",
    "lecun_normal",
    "lecun_uniform",
    "names",
    "normal",
    "ones",
    "ones_init",
    "orthogonal",
    "random_normal",
    "random_truncated_normal",
    "random_uniform",
    "register",
    "register_function",
    "scheme",
    "schemes",
    "sparse",
    "stft",
    "torch_default_bias",
    "torch_default_kernel",
    "torch_kaiming_normal",
    "torch_kaiming_uniform",
    "torch_normal",
    "torch_sparse",
    "torch_trunc_normal",
    "torch_uniform",
    "torch_xavier_normal",
    "torch_xavier_uniform",
    "truncated_normal",
    "uniform",
    "variance_scaling",
    "xavier_normal",
    "xavier_uniform",
    "zero_init",
    "zeros",
    "zeros_init",
]
