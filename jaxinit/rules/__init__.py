"""Rules: which initializer each parameter of a model gets.

:func:`reinit` and its rules, per-layer fans, rule sets for whole models (GPT-2, muP,
Fixup, ViT, ...), LSUV, sharded initialization, and muP's optimizer transforms (they share
the rules' parameter-path helpers). Builds on :mod:`jaxinit.initializers` only. Every name
here is also ``jaxinit.<name>``.
"""

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
from jaxinit.rules._mup import mup_process_heads as mup_process_heads
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
from jaxinit.rules._rulesets_hf import llama as llama
from jaxinit.rules._rulesets_hf import t5 as t5
from jaxinit.rules._rulesets_models import bert as bert
from jaxinit.rules._rulesets_models import deepnet as deepnet
from jaxinit.rules._rulesets_models import deepnorm_constants as deepnorm_constants
from jaxinit.rules._rulesets_models import depth_scaled as depth_scaled
from jaxinit.rules._rulesets_models import layer_index as layer_index
from jaxinit.rules._rulesets_models import recurrent as recurrent
from jaxinit.rules._rulesets_models import roberta as roberta
from jaxinit.rules._rulesets_models import torch_default_layer_rules as torch_default_layer_rules
from jaxinit.rules._rulesets_models import vit as vit
from jaxinit.rules._rulesets_torchvision import convnext as convnext
from jaxinit.rules._rulesets_torchvision import efficientnet as efficientnet
from jaxinit.rules._rulesets_torchvision import mobilenet as mobilenet
from jaxinit.rules._rulesets_torchvision import resnet as resnet
from jaxinit.rules._sharded import init_params as init_params
from jaxinit.rules._sharded import make_init as make_init
from jaxinit.rules._sharded import param_shardings as param_shardings

__all__ = [
    "BaseShape",
    "ContextRule",
    "CoordCheck",
    "InfShape",
    "LayerFans",
    "LayerReport",
    "LeafInfo",
    "any_of",
    "base_shapes",
    "bert",
    "convnext",
    "coord_check",
    "deepnet",
    "deepnorm_constants",
    "depth_scaled",
    "efficientnet",
    "explain",
    "fan_axes",
    "fixup",
    "gpt2",
    "infshape_of",
    "infshapes",
    "init_params",
    "layer_index",
    "llama",
    "lr_multiplier",
    "lsuv",
    "make_init",
    "mobilenet",
    "mup",
    "mup_adam",
    "mup_attention_fn",
    "mup_process_heads",
    "mup_sgd",
    "optional",
    "param_shardings",
    "readout_multiplier",
    "recurrent",
    "reinit",
    "resnet",
    "rezero",
    "roberta",
    "scale_by_mup",
    "skipinit",
    "t5",
    "t_fixup",
    "torch_default_layer_rules",
    "torch_default_rules",
    "vit",
]
