"""lit configuration: `lit tests/filecheck` runs every `.mlir` file's RUN lines.

The virtualenv's scripts (`opt-pipeline`, `filecheck`) sit next to the Python that runs
lit and go first on PATH, so no activated virtualenv is needed. Error tests use lit's
`not`, as MLIR's do; `opt-pipeline` exits 1 for every error, and FileCheck then checks
the one `FILE:LINE:COL: error:` line. `tests/test_filecheck.py` runs each file through lit.
"""

import os
import sys

import lit.formats

config.name = "dynn-filecheck"  # noqa: F821 (lit injects `config`)
config.test_format = lit.formats.ShTest()  # noqa: F821
config.suffixes = {".mlir"}  # noqa: F821
config.test_source_root = os.path.dirname(__file__)  # noqa: F821
config.pipefail = True  # noqa: F821
config.environment["PATH"] = os.pathsep.join(  # noqa: F821
    [os.path.dirname(sys.executable), os.environ.get("PATH", "")]
)
