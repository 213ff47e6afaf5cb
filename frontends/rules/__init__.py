"""The rule-set frontend: the languages rule learners print, as a compiled `dy` program.

    from frontends import rules
    program = rules.compile(text, features=["f0", "f1", "temp"], backend="llvm")
    program(table)          # [N, 3] tensor -> N class names (None: no class holds)
    program.explain(table)  # per row, the rule that fired and why

Texts are NeSyFOLD / FOLD-SE-M / FOLD-R++ / FOLD-RM rule-sets (`docs/rules.md` gives the
language and its semantics). Errors are :class:`RuleError`, ``FILE:LINE:COL: error: ...``.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from frontends.rules.check import build, parse
from frontends.rules.evaluate import NO_CLASS, class_names, predict, predict_rows, truth_values
from frontends.rules.explain import Explanation
from frontends.rules.explain import explain as explain_rows
from frontends.rules.lower import CLASSES_ATTR, append_classifier, lower
from frontends.rules.model import (
    BINARY,
    NUMERIC,
    AtomLiteral,
    ClassKey,
    ComparisonLiteral,
    Feature,
    FeatureLiteral,
    Literal,
    PredicateKey,
    Rule,
    RuleSet,
    RuleSetSize,
)
from frontends.rules.program import RuleProgram
from frontends.rules.syntax import RuleError, read_rule_file
from runtime.program import DEFAULT_CACHE_DIR


def compile(  # noqa: A001 - the frontend's verb, as `frontends.torch.compile`
    rules: str | RuleSet,
    features: Sequence[str] | None = None,
    backend: str = "llvm",
    *,
    if_convert: bool = True,
    source: str = "<rules>",
    cache_dir: pathlib.Path | None = DEFAULT_CACHE_DIR,
) -> RuleProgram:
    """A program deciding tables of ``features`` columns with a rule text (or rule-set)."""
    rule_set = rules if isinstance(rules, RuleSet) else parse(rules, source, features)
    return RuleProgram(rule_set, backend=backend, if_convert=if_convert, cache_dir=cache_dir)


__all__ = [
    "BINARY",
    "CLASSES_ATTR",
    "NO_CLASS",
    "NUMERIC",
    "AtomLiteral",
    "ClassKey",
    "ComparisonLiteral",
    "Explanation",
    "Feature",
    "FeatureLiteral",
    "Literal",
    "PredicateKey",
    "Rule",
    "RuleError",
    "RuleProgram",
    "RuleSet",
    "RuleSetSize",
    "append_classifier",
    "build",
    "class_names",
    "compile",
    "explain_rows",
    "lower",
    "parse",
    "predict",
    "predict_rows",
    "read_rule_file",
    "truth_values",
]
