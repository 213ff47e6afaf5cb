"""Neuro-symbolic rule extraction from CNNs (NeSyFOLD line of work).

The pipeline trains a VGG-style CNN, binarizes the norms of its last
convolutional layer's filters, and learns a stratified normal logic program
(a :class:`frontends.rules.RuleSet`) over the binary filter table with
FOLD-SE-M. The rule-set is the symbolic half that the compiler lowers.
"""

from frontends.nesy.errors import NesyError

__all__ = ["NesyError"]
