"""The options a service binary really has, read from its `--help` (clap's long help).

Every option is a flag with an env fallback, so `[env: NAME=…]` under a flag is the name a
container may set. RUST_LOG is not a clap option: tracing's filter reads it (DESIGN.md lists
it among the shared names).
"""

import re
import subprocess
from dataclasses import dataclass

ENV_NOT_FROM_CLAP = {"RUST_LOG"}


@dataclass(frozen=True)
class Option:
    env: str
    default: str | None
    text: str


def read_options(binary):
    """{ENV_NAME: Option} of one binary; raises CalledProcessError if it cannot print help."""
    help_text = subprocess.run(
        [binary, "--help"], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    options = {}
    for block in re.split(r"\n(?=\s{2,}(?:-\w, )?--[\w-])", help_text):
        env = re.search(r"\[env: ([A-Z0-9_]+)", block)
        if not env:
            continue
        default = re.search(r"\[default: ([^\]]*)\]", block)
        text = " ".join(
            line.strip()
            for line in block.splitlines()[1:]
            if line.strip() and not line.strip().startswith("[")
        )
        options[env.group(1)] = Option(env.group(1), default.group(1) if default else None, text)
    return options
