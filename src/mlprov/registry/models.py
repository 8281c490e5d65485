"""Registered models: create, read, list, tag and describe."""

from __future__ import annotations

from collections.abc import Mapping

from mlprov.errors import ConflictError, NotFoundError
from mlprov.records import RegisteredModel
from mlprov.refs import validate_model_name
from mlprov.registry._context import RegistryContext, require_model
from mlprov.registry._unit import Mutation, mutation
from mlprov.registry.inputs import check_tag, check_tag_changes
from mlprov.store.models import ModelKey

__all__ = [
    "create_model",
    "create_model_in",
    "describe_model",
    "get_model",
    "list_models",
    "tag_model",
]


def create_model_in(
    unit: Mutation, name: str, description: str = "", tags: Mapping[str, str] | None = None
) -> ModelKey:
    """Insert a model inside an open mutation (also used by a first registration)."""
    tags = dict(tags or {})
    if unit.tx.deployments.find(name) is not None:  # one namespace (ADR 0050)
        raise ConflictError(f"{name!r} is a deployment; a model cannot have its name")
    model = unit.tx.models.insert(name=name, description=description, at=unit.at, actor=unit.actor)
    for key, value in sorted(tags.items()):
        unit.tx.models.set_tag(model, key, value)
    unit.audit("model.create", name, {"description": description, "tags": tags})
    return model


def create_model(
    context: RegistryContext,
    name: str,
    *,
    description: str = "",
    tags: Mapping[str, str] | None = None,
) -> RegisteredModel:
    validate_model_name(name)
    for key, value in (tags or {}).items():
        check_tag(key, value)
    with mutation(context) as unit:
        if unit.tx.models.find(name) is not None:
            raise ConflictError(f"model {name!r} already exists")
        create_model_in(unit, name, description, tags)
    return get_model(context, name)


def get_model(context: RegistryContext, name: str) -> RegisteredModel:
    validate_model_name(name)
    with context.metadata.read() as tx:
        model = tx.models.find(name)
        if model is None:
            raise NotFoundError(f"model {name!r} not found")
        return tx.models.records([model])[0]


def list_models(
    context: RegistryContext,
    *,
    prefix: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> list[RegisteredModel]:
    with context.metadata.read() as tx:
        records = tx.models.records(tx.models.keys(prefix))
    wanted = dict(tags or {})
    return [r for r in records if all(r.tags.get(k) == v for k, v in wanted.items())]


def tag_model(
    context: RegistryContext, name: str, changes: Mapping[str, str | None], *, reason: str = ""
) -> RegisteredModel:
    """Set tags (a value) or remove them (None), all in one audited transaction."""
    validate_model_name(name)
    check_tag_changes(changes)
    with mutation(context) as unit:
        model = require_model(unit.tx, name)
        for key, value in sorted(changes.items()):
            unit.tx.models.set_tag(model, key, value)
        unit.audit("model.tag", name, {"tags": dict(changes)}, reason)
    return get_model(context, name)


def describe_model(context: RegistryContext, name: str, description: str) -> RegisteredModel:
    validate_model_name(name)
    with mutation(context) as unit:
        model = require_model(unit.tx, name)
        unit.tx.models.set_description(model, description)
        unit.audit("model.describe", name, {"description": description})
    return get_model(context, name)
