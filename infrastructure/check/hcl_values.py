"""Terraform files as plain Python values (python-hcl2), with the quoting taken off.

python-hcl2 returns literal strings with their quotes (`'"json"'`) and expressions as
`${…}`. Here a literal becomes its text and an expression an `Expr`, so checks compare
literals directly and refuse to guess about anything computed. Blocks stay lists of dicts.
"""

import pathlib

import hcl2


class Expr(str):
    """A Terraform expression (not a literal): its source text."""


def _plain(value):
    if isinstance(value, dict):
        return {
            _unquote(key): _plain(item)
            for key, item in value.items()
            if key not in ("__is_block__", "__comments__", "__inline_comments__")
        }
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, str):
        if value.startswith("${") and value.endswith("}"):
            return Expr(value[2:-1])
        if len(value) >= 2 and value[0] == value[-1] == '"':
            inner = value[1:-1]
            return Expr(inner) if "${" in inner else inner.replace('\\"', '"')
        return value
    return value


def _unquote(key):
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == '"' else key


def load_dir(directory):
    """{file name: parsed file} for every .tf file of one module or environment."""
    return {
        path.name: _plain(hcl2.load(path.open()))
        for path in sorted(pathlib.Path(directory).glob("*.tf"))
    }


def resources(parsed_files, kind="resource"):
    """[(type, name, body, file)] of every resource (or data source) block in a module."""
    found = []
    for file_name, parsed in parsed_files.items():
        for entry in parsed.get(kind, []):
            for rtype, named in entry.items():
                for rname, body in named.items():
                    found.append((rtype, rname, body, file_name))
    return found


def modules_called(parsed_files):
    """[(name, body)] of every module block in a module or environment."""
    return [(name, body) for parsed in parsed_files.values() for entry in parsed.get("module", []) for name, body in entry.items()]


def locals_of(parsed_files):
    merged = {}
    for parsed in parsed_files.values():
        for block in parsed.get("locals", []):
            merged.update(block)
    return merged


def block(body, name):
    """The first nested block `name` of a resource body, or {}."""
    value = body.get(name) or [{}]
    return value[0] if isinstance(value, list) else value
