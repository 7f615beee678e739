"""torchvision's models built on the meta device: their structure without memory, for the
tests that compare or export every CNN of the zoo (needs torch and torchvision)."""
from __future__ import annotations

import warnings


def meta_model(name: str):
    """torchvision's model ``name`` on the meta device. RegNet computes its widths with real
    tensors, so its BlockParams run on the CPU meanwhile."""
    import torch
    import torchvision
    from torchvision.models import regnet

    real = regnet.BlockParams.from_init_params.__func__

    def on_cpu(cls, *args, **kwargs):
        with torch.device("cpu"):
            return real(cls, *args, **kwargs)

    regnet.BlockParams.from_init_params = classmethod(on_cpu)
    try:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")     # GoogLeNet's and Inception's init notices
            return torchvision.models.get_model(name)
    finally:
        regnet.BlockParams.from_init_params = classmethod(real)
