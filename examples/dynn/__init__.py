"""Zoo of dynamic neural networks: PyTorch models whose control flow depends on tensor values.

Every module listed in :data:`ZOO` defines ``make_model()``, ``make_inputs()`` and
``sample_inputs(n, seed=0)``; see ``README.md`` next to this file.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType

#: Model name -> file name (in this directory) of the module defining it.
ZOO: dict[str, str] = {
    "sdn_mobilenet": "sdn_mobilenet.py",
    "sdn_vgg16": "sdn_vgg16.py",
    "sdn_resnet56": "sdn_resnet56.py",
    "sdn_wideresnet": "sdn_wideresnet.py",
    "skipnet_rnn": "skipnet_rnn.py",
    "skipnet_ffgate": "skipnet_ffgate.py",
    "caption_resnext": "caption_resnext.py",
    "caption_resnet": "caption_resnet.py",
    "blockdrop_resnet110": "blockdrop_resnet110.py",
    "pabee_bert": "pabee_bert.py",
    "deebert": "deebert.py",
    "cond_router": "cond_router.py",
    "while_loop_fixed_point": "while_loop_fixed_point.py",
    "sdn_resnet56_early_exit": "sdn_resnet56_early_exit.py",
    "caption_attention": "caption_attention.py",
    "ranet_anytime": "ranet_anytime.py",
    "skipnet_ffgate_masks": "skipnet_ffgate_masks.py",
    "transformer_nmt": "transformer_nmt.py",
    "dynamicvit_tiny": "dynamicvit_tiny.py",
    "moe_top2": "moe_top2.py",
    "early_exit_batch": "early_exit_batch.py",
    "hydranet": "hydranet.py",
    "beam_search_caption": "beam_search_caption.py",
    "act_rnn": "act_rnn.py",
}

#: Zoo models the compiler does not convert yet -> why (the acceptance tests expect them to
#: fail, strictly: a model that starts converting must be moved out of here).
NOT_CONVERTED: dict[str, str] = {}


def load(name: str) -> ModuleType:
    """Import the module of zoo model ``name``."""
    return importlib.import_module(f"{__name__}.{ZOO[name].removesuffix('.py')}")


def model_file(name: str) -> str:
    """Absolute path of the source file of zoo model ``name``."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), ZOO[name])
