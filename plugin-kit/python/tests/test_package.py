"""The kit has no runtime dependencies: pyproject declares none and the code imports only the stdlib."""

import ast
import os
import re
import sys
import unittest

import _support  # noqa: F401  (import path)

KIT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(KIT, "faxbot_plugin_kit")


class NoDependencies(unittest.TestCase):
    def test_pyproject_declares_none(self):
        with open(os.path.join(KIT, "pyproject.toml"), encoding="utf-8") as f:
            text = f.read()
        self.assertRegex(text, r"(?m)^dependencies = \[\]$")
        self.assertRegex(text, r'(?m)^requires-python = ">=3\.9"$')
        self.assertIsNone(re.search(r"(?m)^\[project\.optional-dependencies\]", text))

    def test_only_the_standard_library_is_imported(self):
        stdlib = getattr(sys, "stdlib_module_names", None)
        if stdlib is None:
            self.skipTest("sys.stdlib_module_names needs Python 3.10")
        for name in sorted(os.listdir(PACKAGE)):
            if not name.endswith(".py"):
                continue
            with open(os.path.join(PACKAGE, name), encoding="utf-8") as f:
                tree = ast.parse(f.read(), name)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    modules = [node.module or ""]
                else:
                    continue
                for module in modules:
                    with self.subTest(file=name, module=module):
                        self.assertIn(module.split(".")[0], stdlib | {"__future__"})


if __name__ == "__main__":
    unittest.main()
