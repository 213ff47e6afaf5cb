"""lit configuration: `lit tests/filecheck` runs every `.mlir` file's RUN lines.

`tests/test_filecheck.py` runs the same files under pytest with bash and `tools/not`, which
also insists on exit status exactly 1; lit's internal shell has its own `not` (any failure).
Both put the virtualenv's scripts (`opt-pipeline`, `filecheck`) on PATH.
"""

import os
import sys

import lit.formats

config.name = "dynn-filecheck"  # noqa: F821 (lit injects `config`)
config.test_format = lit.formats.ShTest()  # noqa: F821
config.suffixes = {".mlir"}  # noqa: F821
config.excludes = {"tools"}  # noqa: F821
config.test_source_root = os.path.dirname(__file__)  # noqa: F821
config.pipefail = True  # noqa: F821
config.environment["PATH"] = os.pathsep.join(  # noqa: F821
    [
        os.path.dirname(sys.executable),
        os.environ.get("PATH", ""),
    ]
)
