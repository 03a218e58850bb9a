"""The config's documentation, generated from the schema's help texts: docs/configuration.md's reference
table (`python -m kernellab.config_help`) and `python train.py --help`'s option list."""

from __future__ import annotations

import textwrap
from dataclasses import MISSING, fields, is_dataclass
from typing import Any

from kernellab.config import GRADIENT_DESCENT, OPTIM_HELP, Config
from kernellab.errors import show


def reference_table() -> str:
    """The README's table of every config key: default and meaning, read from the schema."""
    lines = ["| key | default | meaning |", "| --- | --- | --- |"]
    for key, default, text in schema_rows():
        lines.append(f"| `{key}` | `{show(default)}` | {text} |")
    return "\n".join(lines)


def schema_rows() -> list[tuple[str, Any, str]]:
    """(key, default, help) for every documented key, in the schema's order."""
    return [(key, default, text) for key, default, text, _ in _schema_rows(Config, "")]


def schema_types() -> dict[str, str]:
    """key -> its type as the schema writes it: `int`, `float | None`, `list[int]`, `Any`, ..."""
    return {key: kind for key, _, _, kind in _schema_rows(Config, "")}


def _schema_rows(schema: type, prefix: str) -> list[tuple[str, Any, str, str]]:
    rows = []
    for f in fields(schema):
        if is_dataclass(f.type) or (
            f.default_factory is not MISSING and is_dataclass(f.default_factory)
        ):
            rows += _schema_rows(f.default_factory, f"{prefix}{f.name}.")
        elif f.name == "optim":
            rows += [
                (f"optim.{k}", GRADIENT_DESCENT[k], text, type(GRADIENT_DESCENT[k]).__name__)
                for k, text in OPTIM_HELP.items()
            ]
        elif "help" in f.metadata:
            default = f.default if f.default is not MISSING else f.default_factory()
            kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            kind = f.metadata.get("type", kind)
            rows.append((prefix + f.name, default, f.metadata["help"], kind))
    return rows


HELP_WIDTH = 92


def options_help() -> str:
    """`python train.py --help`'s option list: every key with its default, type and meaning,
    from the schema's help texts (docs/configuration.md's table, for a terminal)."""
    types = schema_types()
    blocks = []
    for key, default, text in schema_rows():
        kind = types[key]
        kind = kind.replace(" | None", " or null")
        head = f"  {key}={show(default)}" + (f"  ({kind})" if kind != "Any" else "")
        body = textwrap.fill(text, HELP_WIDTH, initial_indent=" " * 6, subsequent_indent=" " * 6)
        blocks.append(f"{head}\n{body}")
    # `$` would start a substitution in Hydra's help template (string.Template)
    return "\n".join(blocks).replace("$", "$$")


if __name__ == "__main__":
    print(reference_table())


if __name__ == "__main__":
    print(reference_table())
