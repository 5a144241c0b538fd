#!/usr/bin/env python3
"""The structure check of `make lint` on small crates written for the purpose: it must find a
cycle however the paths are written, and leave one-way uses, parents and tests alone."""

import tempfile
import unittest
from pathlib import Path

from module_cycles import cycles


def crate(files):
    root = Path(tempfile.mkdtemp()) / "c"
    for name, text in files.items():
        path = root / "src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


class ModuleCycles(unittest.TestCase):
    def test_top_level_modules_naming_each_other_through_any_file(self):
        found = cycles(crate({
            "lib.rs": "pub mod config;\npub mod routes;\n",
            "config.rs": "use crate::routes::cors::Origins;\n",
            "routes/mod.rs": "mod cors;\n",
            "routes/cors.rs": "pub struct Origins;\nfn f(c: &crate::config::Config) {}\n",
        }))
        self.assertEqual(found, [("config", "routes")])

    def test_grouped_imports_count(self):
        found = cycles(crate({
            "a.rs": "use crate::{b::{X, Y}, c};\n",
            "b.rs": "use crate::a::Z;\n",
            "c.rs": "",
        }))
        self.assertEqual(found, [("a", "b")])

    def test_files_of_one_module_naming_each_other(self):
        found = cycles(crate({
            "m/mod.rs": "mod x;\nmod y;\n",
            "m/x.rs": "use super::y::Y;\n",
            "m/y.rs": "use super::x::X;\n",
        }))
        self.assertEqual(found, [("m::x", "m::y")])

    def test_one_way_uses_parents_comments_and_tests_are_not_cycles(self):
        found = cycles(crate({
            "a.rs": "use crate::b::B;\n/// Unlike [`crate::c`].\n",
            "b.rs": "pub struct B;\n#[cfg(test)]\nmod tests {\n    use crate::a;\n}\n",
            "c/mod.rs": "mod d;\npub use d::D;\n",
            "c/d.rs": "use super::C;\n",
        }))
        self.assertEqual(found, [])


if __name__ == "__main__":
    unittest.main()
