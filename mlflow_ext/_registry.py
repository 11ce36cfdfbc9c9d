"""Plugin discovery: one path for built-ins and third-party plugins alike.

Every plugin, ours included, is an entry point in one group per kind; the entry-point name is the
public name. Listing reads package metadata only (no import); a plugin is imported on first use,
validated against its kind's protocol, and cached. A plugin that fails is an error that names it,
never a warning and a skip.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import inspect
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union

from mlflow_ext.errors import ConfigError, PluginError

__all__ = ["KINDS", "PluginInfo", "available", "check_option", "create", "load", "plugins", "reset"]

# kind -> (entry-point group, "module:Protocol" the plugin must satisfy)
KINDS: dict[str, tuple[str, str]] = {
    "detector": ("mlflow_ext.detectors", "mlflow_ext.detectors:Detector"),
    "rule": ("mlflow_ext.rules", "mlflow_ext.rules:Rule"),
    "hook": ("mlflow_ext.hooks", "mlflow_ext.hooks:Hook"),
    "engine": ("mlflow_ext.engines", "mlflow_ext.engines:Engine"),
}
OWN_DISTRIBUTION = "mlflow-ext"
DISABLE_ENV = "MLFLOW_EXT_DISABLE_PLUGINS"


@dataclass(frozen=True)
class PluginInfo:
    """One installed plugin as its package metadata describes it (nothing imported)."""

    name: str
    kind: str
    value: str
    distribution: str
    version: str
    license: str
    builtin: bool


_index: dict[str, dict[str, tuple[PluginInfo, md.EntryPoint]]] | None = None
_loaded: dict[tuple[str, str], type] = {}


def reset() -> None:
    """Forget what was discovered and loaded (after installing a plugin, or in tests)."""
    global _index
    _index = None
    _loaded.clear()


def _disabled() -> tuple[bool, set[str]]:
    """Read MLFLOW_EXT_DISABLE_PLUGINS: '1'/'all' keeps built-ins only; else names to disable."""
    raw = os.environ.get(DISABLE_ENV, "").strip()
    if raw.lower() in {"1", "true", "yes", "all"}:
        return True, set()
    return False, {part.strip() for part in raw.split(",") if part.strip()}


def _license(dist: md.Distribution | None) -> str:
    if dist is None:
        return "unknown"
    meta: Any = dist.metadata  # an email.message.Message underneath, which has .get
    expression = meta.get("License-Expression")
    if expression:
        return str(expression)
    text = meta.get("License")
    if text and len(text) < 80:
        return str(text)
    for classifier in meta.get_all("Classifier") or []:
        if classifier.startswith("License ::"):
            return str(classifier.split("::")[-1].strip())
    return "unknown"


def _build_index() -> dict[str, dict[str, tuple[PluginInfo, md.EntryPoint]]]:
    all_third_party_off, names_off = _disabled()
    index: dict[str, dict[str, tuple[PluginInfo, md.EntryPoint]]] = {kind: {} for kind in KINDS}
    for kind, (group, _) in KINDS.items():
        for ep in md.entry_points(group=group):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else "unknown"
            builtin = md_normalize(dist_name) == md_normalize(OWN_DISTRIBUTION)
            if not builtin and (all_third_party_off or ep.name in names_off or dist_name in names_off):
                continue
            info = PluginInfo(
                name=ep.name,
                kind=kind,
                value=ep.value,
                distribution=dist_name,
                version=dist.version if dist is not None else "unknown",
                license=_license(dist),
                builtin=builtin,
            )
            if ep.name in index[kind]:
                other = index[kind][ep.name][0]
                if other.distribution == info.distribution:
                    continue  # the same distribution seen twice on sys.path
                raise PluginError(
                    f"Two {kind} plugins are named {ep.name!r}: one from {other.distribution} "
                    f"{other.version} ({other.value}), one from {info.distribution} {info.version} "
                    f"({info.value}).",
                    hint=f"Uninstall one of them, or disable one with {DISABLE_ENV}=<distribution>.",
                )
            index[kind][ep.name] = (info, ep)
    return index


def md_normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _get_index() -> dict[str, dict[str, tuple[PluginInfo, md.EntryPoint]]]:
    global _index
    if _index is None:
        _index = _build_index()
    return _index


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise PluginError(f"No plugin kind {kind!r}. Kinds: {', '.join(sorted(KINDS))}.")


def plugins(kind: str | None = None) -> list[PluginInfo]:
    """Every installed (and not disabled) plugin, sorted by kind and name; imports nothing."""
    if kind is not None:
        _check_kind(kind)
    index = _get_index()
    kinds = [kind] if kind is not None else sorted(index)
    return [index[k][name][0] for k in kinds for name in sorted(index[k])]


def available(kind: str) -> list[str]:
    """The names of the installed plugins of one kind."""
    return [info.name for info in plugins(kind)]


def _protocol(kind: str) -> type:
    module, attr = KINDS[kind][1].split(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


def _protocol_members(protocol: type) -> list[str]:
    members: set[str] = set()
    for base in protocol.__mro__:
        if base is object or base.__name__ in {"Protocol", "Generic"}:
            continue
        members.update(name for name in vars(base) if not name.startswith("_"))
        members.update(name for name in getattr(base, "__annotations__", {}) if not name.startswith("_"))
    return sorted(members)


def load(kind: str, name: str) -> type:
    """Import, validate and cache the plugin class registered as ``name`` in ``kind``."""
    _check_kind(kind)
    key = (kind, name)
    if key in _loaded:
        return _loaded[key]
    index = _get_index()[kind]
    if name not in index:
        installed = ", ".join(sorted(index)) or "none"
        raise PluginError(
            f"No {kind} named {name!r}. Installed: {installed}.",
            hint="Run 'mlflow-ext plugins' to see what is installed.",
        )
    info, ep = index[name]
    try:
        obj = ep.load()
    except Exception as exc:  # noqa: BLE001 - any import failure must name the plugin
        raise PluginError(
            f"The {kind} plugin {name!r} from {info.distribution} {info.version} failed to load "
            f"({info.value}): {type(exc).__name__}: {exc}",
            hint=f"Fix or uninstall {info.distribution}, or disable it with {DISABLE_ENV}={name}.",
        ) from exc
    if not inspect.isclass(obj):
        raise PluginError(
            f"The {kind} plugin {name!r} ({info.value}) is a {type(obj).__name__}, not a class.",
            hint=f"Point the entry point at a class that implements {KINDS[kind][1]}.",
        )
    missing = [m for m in _protocol_members(_protocol(kind)) if not hasattr(obj, m)]
    if missing:
        raise PluginError(
            f"The {kind} plugin {name!r} ({info.value}) does not satisfy the {kind} protocol: "
            f"missing {', '.join(missing)}.",
            hint=f"See {KINDS[kind][1]} for what a {kind} must provide.",
        )
    _loaded[key] = obj
    return obj


def create(kind: str, name: str, options: dict[str, Any] | None = None, *, where: str = "") -> Any:
    """Instantiate a plugin with keyword options; a bad option is a ConfigError at ``where``."""
    cls = load(kind, name)
    options = dict(options or {})
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        params = signature.parameters
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        prefix = f"{where}: " if where else ""
        unknown = [key for key in options if key not in params and not accepts_any]
        if unknown:
            valid = ", ".join(sorted(k for k, p in params.items() if p.kind is p.KEYWORD_ONLY)) or "none"
            raise ConfigError(
                f"{prefix}unknown option {unknown[0]!r} for {kind} {name!r}. Valid options: {valid}."
            )
        missing = [
            key for key, p in params.items()
            if p.default is p.empty and p.kind is p.KEYWORD_ONLY and key not in options
        ]
        if missing:
            raise ConfigError(f"{prefix}{kind} {name!r} needs the option {missing[0]!r}.")
        hints = _init_hints(cls)
        for key, value in options.items():
            if key in hints:
                check_option(value, hints[key], f"{where}.{key}" if where else key)
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}invalid options for {kind} {name!r}: {exc}") from exc


# -- option values against their annotations -------------------------------------------------------
# Options come from TOML, so the types worth checking are the TOML ones: numbers, strings, booleans,
# lists, tables, Literal choices and optional values. Any other annotation is the plugin's business.


def _init_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls.__init__)  # type: ignore[misc]
    except Exception:  # noqa: BLE001 - an annotation we cannot resolve is left to the plugin
        return {}


def check_option(value: Any, annotation: Any, field: str) -> None:
    """Raise ConfigError ``<field>: expected <what>, got <value>`` unless ``value`` fits ``annotation``."""
    if not _fits(value, annotation):
        raise ConfigError(f"{field}: expected {_describe(annotation)}, got {value!r}.")


def _fits(value: Any, annotation: Any) -> bool:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if origin is Literal:
        # type() too: True == 1 and 1.0 == 1 must not pass for Literal["1"] lookalikes
        return any(value == arg and type(value) is type(arg) for arg in args)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, tuple, Sequence) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        item = args[0] if args else Any
        return all(_fits(v, item) for v in value)
    if origin in (dict, Mapping) or annotation is dict:
        if not isinstance(value, Mapping):
            return False
        item = args[1] if len(args) == 2 else Any
        return all(isinstance(k, str) and _fits(v, item) for k, v in value.items())
    return True


_WORDS = {bool: ("true or false", "booleans"), int: ("an integer", "integers"), float: ("a number", "numbers"),
          str: ("a string", "strings"), type(None): ("nothing", "nothing")}


def _describe(annotation: Any, plural: bool = False) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(arg, plural) for arg in args if arg is not type(None))
    if origin is Literal:
        return ("values among " if plural else "one of ") + ", ".join(repr(arg) for arg in args)
    if annotation in _WORDS:
        return _WORDS[annotation][plural]
    if origin in (list, tuple, Sequence) or annotation in (list, tuple):
        return f"a list of {_describe(args[0], True)}" if args else "a list"
    if origin in (dict, Mapping) or annotation is dict:
        return f"a table of {_describe(args[1], True)}" if len(args) == 2 else "a table"
    return getattr(annotation, "__name__", str(annotation))
