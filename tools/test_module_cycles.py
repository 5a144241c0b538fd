#!/usr/bin/env python3
"""The structure check of `make lint` on small crates written for the purpose: it must find a
cycle however the paths are written, and leave one-way uses, parents and tests alone."""

import tempfile
import unittest
from pathlib import Path

from module_cycles import cycles

# (what the case shows, the crate's files under src/, the pairs the check must name)
CASES = [
    (
        "top-level modules naming each other through any of their files",
        {
            "lib.rs": "pub mod config;\npub mod routes;\n",
            "config.rs": "use crate::routes::cors::Origins;\n",
            "routes/mod.rs": "mod cors;\n",
            "routes/cors.rs": "pub struct Origins;\nfn f(c: &crate::config::Config) {}\n",
        },
        [("config", "routes")],
    ),
    (
        "grouped imports",
        {"a.rs": "use crate::{b::{X, Y}, c};\n", "b.rs": "use crate::a::Z;\n", "c.rs": ""},
        [("a", "b")],
    ),
    (
        "files of one module naming each other",
        {"m/mod.rs": "mod x;\nmod y;\n", "m/x.rs": "use super::y::Y;\n", "m/y.rs": "use super::x::X;\n"},
        [("m::x", "m::y")],
    ),
    (
        "one-way uses, a parent and its child, comments and test modules",
        {
            "a.rs": "use crate::b::B;\n/// Unlike [`crate::c`].\n",
            "b.rs": "pub struct B;\n#[cfg(test)]\nmod tests {\n    use crate::a;\n}\n",
            "c/mod.rs": "mod d;\npub use d::D;\n",
            "c/d.rs": "use super::C;\n",
        },
        [],
    ),
]


def crate(files, parent):
    root = Path(parent) / "c"
    for name, text in files.items():
        path = root / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


class ModuleCycles(unittest.TestCase):
    def test_each_case_names_exactly_its_cycles(self):
        for shows, files, expected in CASES:
            with self.subTest(shows), tempfile.TemporaryDirectory() as parent:
                self.assertEqual(cycles(crate(files, parent)), expected)


if __name__ == "__main__":
    unittest.main()
