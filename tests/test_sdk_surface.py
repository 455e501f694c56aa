"""The Singer SDK's private surface: every name the tap touches exists in the installed SDK, and only sdk.py names one.

Run this module after installing another singer-sdk release: a failure names the symbol
that moved (see docs/architecture.md#the-sdks-private-surface).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest
from singer_sdk import RESTStream, Stream, Tap
from singer_sdk.authenticators import BearerTokenAuthenticator, OAuthAuthenticator
from singer_sdk.contrib.msgspec import MsgSpecWriter
from singer_sdk.pagination import BaseAPIPaginator

from tap_zoom_sms import sdk

PACKAGE = Path(sdk.__file__).resolve().parent
#: Private names of the SDK's classes: no module of the tap but sdk.py may name one.
PRIVATE_NAMES = frozenset(p.name for p in sdk.PRIVATE_SURFACE if p.name.startswith("_")) | {
    "_tap",
    "_state_writer",
}


@pytest.mark.parametrize("private", sdk.PRIVATE_SURFACE, ids=lambda p: p.symbol)
def test_the_installed_sdk_has_each_private_name_the_tap_uses(private: sdk.Private) -> None:
    assert sdk.surface_problems([private]) == []


def test_a_missing_or_changed_private_name_is_reported_by_its_symbol() -> None:
    missing = sdk.Private(Stream, "_sync_every_child", ("self",))
    changed = sdk.Private(Stream, "_sync_children", ("self", "context"))
    unset = sdk.Private(Stream, "_no_such_attribute", in_init=True)
    assert sdk.surface_problems([missing, changed, unset]) == [
        "singer_sdk.streams.core.Stream._sync_every_child: missing from the installed singer-sdk",
        "singer_sdk.streams.core.Stream._sync_children: parameters ('self', 'child_context'), "
        "the tap expects ('self', 'context')",
        "singer_sdk.streams.core.Stream._no_such_attribute: no longer set by Stream()",
    ]


def private_uses(path: Path) -> list[str]:
    """Return where ``path`` imports a private SDK module or name, or names a private SDK attribute."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("singer_sdk"):
            parts = (node.module or "").split(".") + [alias.name for alias in node.names]
            found += [f"line {node.lineno}: from {node.module} import {part}" for part in parts if part.startswith("_")]
        elif isinstance(node, ast.Attribute) and node.attr in PRIVATE_NAMES:
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in PRIVATE_NAMES:
            found.append(f"line {node.lineno}: def {node.name}")
    return found


def test_only_the_sdk_module_names_a_private_sdk_name() -> None:
    # the emulator is Zoom's side, not a user of the SDK
    modules = [p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "sdk.py" and "emulator" not in p.parts]
    uses = {str(p.relative_to(PACKAGE)): private_uses(p) for p in modules}
    assert {name: found for name, found in uses.items() if found} == {}
    assert private_uses(PACKAGE / "sdk.py")  # the scan does see them where they are


def installed_sdk_private_names() -> set[str]:
    """Every private name of the SDK classes the tap derives from: methods, and the attributes they set."""
    names: set[str] = set()
    for cls in (Tap, Stream, RESTStream, OAuthAuthenticator, BearerTokenAuthenticator, BaseAPIPaginator, MsgSpecWriter):
        for owner in cls.__mro__:
            if owner.__module__.startswith("singer_sdk"):
                names |= {n for n in vars(owner) if n.startswith("_") and not n.startswith("__") and n != "_abc_impl"}
                names |= set(re.findall(r"self\.(_[A-Za-z]\w*)\s*[:=]", inspect.getsource(owner)))
    return names


def test_no_class_of_the_tap_outside_sdk_py_touches_any_private_name_of_the_installed_sdk() -> None:
    """Not only the names sdk.py lists: any private name of an SDK class a tap class derives from."""
    private = installed_sdk_private_names()
    assert {"_sync_children", "_request", "_tap", "_state_writer"} <= private  # the scan sees the SDK's names
    touched = {}
    for path in PACKAGE.rglob("*.py"):
        if "emulator" in path.parts or path.name == "__main__.py" or path == PACKAGE / "sdk.py":
            continue
        module = importlib.import_module(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        for cls in vars(module).values():
            if not (inspect.isclass(cls) and cls.__module__ == module.__name__):
                continue
            if not any(base.__module__.startswith("singer_sdk") for base in cls.__mro__[1:]):
                continue
            names = set(vars(cls)) | set(re.findall(r"\.(_[A-Za-z]\w*)", inspect.getsource(cls)))
            if found := sorted(names & private):
                touched[cls.__qualname__] = found
    assert touched == {}
