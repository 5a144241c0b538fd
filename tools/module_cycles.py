#!/usr/bin/env python3
"""Lists the modules of each workspace crate that import each other, and fails if there are any.

Two modules that use each other cannot be read, changed or moved one at a time, and the cycle
usually means a type lives in the wrong one (a configuration value defined beside the route
that uses it, say). `make lint` runs this, so a cycle is refused when it is written.

A module is a source file under a crate's `src/` (`a/mod.rs` is `a`). It uses another when its
non-test code names a path into it (`crate::b::…`, `super::b::…`, or a grouped
`use crate::{b::X, c}`). Two kinds of pairs are reported:

* top-level modules of one crate that name each other (`config` and `routes`), whichever of
  their files does the naming;
* files inside one top-level module that name each other (`routes::a` and `routes::b`).

A parent and its own child naming each other is how Rust modules are built (the parent declares
the child and re-exports from it; the child uses the parent's types), so it is not a cycle.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A line comment (doc comments included) or the conventional trailing test module.
COMMENT = re.compile(r"//[^\n]*")
TEST_MODULE = re.compile(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{")
USE = re.compile(r"\buse\s+([^;]+);")
PATH = re.compile(r"\b((?:crate|super)(?:::super)*)::([A-Za-z_][\w:]*)")


def crates():
    """Every workspace member with a library or binary source tree."""
    manifest = (ROOT / "Cargo.toml").read_text()
    members = re.search(r"members\s*=\s*\[([^\]]*)\]", manifest)
    names = re.findall(r'"([^"]+)"', members.group(1)) if members else []
    return [ROOT / name for name in names if (ROOT / name / "src").is_dir()]


def module_path(src, file):
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    return tuple(parts)


def code_of(file):
    text = COMMENT.sub("", file.read_text())
    test = TEST_MODULE.search(text)
    return text[: test.start()] if test else text


def expand(tree):
    """`crate::{a::X, b}` as `crate::a::X`, `crate::b` (nested braces included)."""
    tree = re.sub(r"\s+", "", tree)
    start = tree.find("{")
    if start < 0:
        return [tree]
    prefix, depth = tree[:start], 0
    for end in range(start, len(tree)):
        depth += {"{": 1, "}": -1}.get(tree[end], 0)
        if depth == 0:
            break
    inner, items, depth, item = tree[start + 1 : end], [], 0, ""
    for char in inner:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(item)
            item = ""
        else:
            item += char
    items.append(item)
    return [path for item in items if item for path in expand(prefix + item)]


def named_paths(code):
    paths = [path for tree in USE.findall(code) for path in expand(tree)]
    paths += [f"{head}::{rest}" for head, rest in PATH.findall(USE.sub("", code))]
    return paths


def target(module, path, modules):
    """The module `path` (seen in `module`) points into, if it is one of `modules`."""
    heads = path.split("::")
    supers = 0
    if heads[0] == "crate":
        base, rest = [], heads[1:]
    elif heads[0] == "super":
        while supers < len(heads) and heads[supers] == "super":
            supers += 1
        base, rest = list(module[: len(module) - supers]), heads[supers:]
    else:
        return None
    full = base + [part for part in rest if part not in ("self", "*")]
    for length in range(len(full), 0, -1):
        candidate = tuple(full[:length])
        if candidate in modules:
            return candidate if candidate != module else None
    return None


def related(a, b):
    return a == b[: len(a)] or b == a[: len(b)]


def cycles(crate):
    src = crate / "src"
    modules = {}
    for file in sorted(src.rglob("*.rs")):
        path = module_path(src, file)
        if path not in (("lib",), ("main",)):
            modules[path] = code_of(file)
    uses = {
        module: {t for p in named_paths(code) if (t := target(module, p, modules))}
        for module, code in modules.items()
    }
    found = set()
    tops = {}
    for module, targets in uses.items():
        for other in targets:
            if module[0] != other[0]:
                tops.setdefault(module[0], set()).add(other[0])
            elif module in uses.get(other, ()) and not related(module, other):
                found.add(tuple(sorted(("::".join(module), "::".join(other)))))
    for top, others in tops.items():
        for other in others:
            if top in tops.get(other, ()):
                found.add(tuple(sorted((top, other))))
    return sorted(found)


def main():
    failed = False
    for crate in crates():
        for a, b in cycles(crate):
            print(f"{crate.name}: {a} and {b} import each other")
            failed = True
    if failed:
        print("modules that import each other: move what both need to where one of them (or a")
        print("third module) owns it")
        return 1
    print(f"no modules import each other ({len(crates())} crates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
