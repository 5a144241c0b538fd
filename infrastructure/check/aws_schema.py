"""Argument and block names of AWS resources, from the provider's generated Python bindings.

`terraform validate` needs the provider binary, which cannot be downloaded here. The PyPI
package cdktf-cdktf-provider-aws is generated from the same provider schema: each resource is
a module (`ecs_service` for aws_ecs_service, `data_aws_region` for the data source) whose
class takes every argument and block as a keyword, and each nested block has a config class
taking its own. The sources are parsed with `ast`, never imported (that would need jsii and
Node.js).
"""

import ast
import pathlib
import re

# Terraform's own arguments, valid on every resource.
META_ARGUMENTS = {"count", "for_each", "depends_on", "lifecycle", "provider", "provisioner", "connection"}


class Schema:
    def __init__(self, package_dir):
        self._dir = pathlib.Path(package_dir)
        self._modules = {}

    def _module(self, module_name):
        if module_name not in self._modules:
            path = self._dir / module_name / "__init__.py"
            if not path.exists():
                self._modules[module_name] = None
            else:
                tree = ast.parse(path.read_text())
                classes = {}
                for node in tree.body:
                    if isinstance(node, ast.ClassDef):
                        init = next(
                            (n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"),
                            None,
                        )
                        if init is not None:
                            classes[node.name] = {
                                arg.arg: ast.unparse(arg.annotation) if arg.annotation else ""
                                for arg in init.args.kwonlyargs
                            }
                self._modules[module_name] = classes
        return self._modules[module_name]

    @staticmethod
    def _class_name(module_name):
        return "".join(part.capitalize() for part in module_name.split("_"))

    def problems(self, rtype, body, kind="resource"):
        """Unknown arguments or blocks of one resource body, as 'where: name' strings."""
        module_name = rtype.removeprefix("aws_")
        if kind == "data":
            module_name = f"data_aws_{module_name}"
        classes = self._module(module_name)
        if classes is None:
            return [f"{rtype}: no such {'data source' if kind == 'data' else 'resource'} in the AWS provider"]
        return self._walk(classes, self._class_name(module_name), body, rtype)

    def _walk(self, classes, class_name, body, where):
        arguments = classes.get(class_name)
        if arguments is None:
            return []
        found = []
        for key, value in body.items():
            if key in META_ARGUMENTS:
                continue
            if key == "dynamic":
                for dynamic in value:
                    for block_name, spec in dynamic.items():
                        content = spec.get("content", [{}])[0]
                        found += self._check_one(classes, arguments, block_name, [content], where)
                continue
            found += self._check_one(classes, arguments, key, value, where)
        return found

    def _check_one(self, classes, arguments, key, value, where):
        # The bindings rename an argument that clashes with a construct property.
        name = next((n for n in (key, f"{key}_attribute", f"{key}_") if n in arguments), None)
        if name is None:
            return [f"{where}: unknown argument or block {key!r}"]
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            nested = [c for c in re.findall(r"'([A-Z]\w+)'", arguments[name]) if c in classes]
            if nested:
                return [p for v in value for p in self._walk(classes, nested[0], v, f"{where}.{key}")]
        return []
