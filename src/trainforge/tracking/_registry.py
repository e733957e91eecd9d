"""ModelRegistry: versioned models, lifecycle tags, user aliases, history and lineage.

A tag (``production``, ``staging``, ``experimental``, ``retired``) or an alias points at one
version of a model name at a time: moving it takes it off the version that held it. A
version holds at most one lifecycle tag, so promoting ``staging`` -> ``production`` clears
its ``staging``. Every move is appended to ``model_label_history``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from trainforge.errors import ModelNotFoundError, TrackingError, TrackingValueError, did_you_mean
from trainforge.records import REFERENCE_PROFILE_FILE
from trainforge.tracking._dialect import inserted_id
from trainforge.tracking._limits import check_name, check_text, valid_id
from trainforge.tracking._schema import (
    MODEL_TAGS,
    artifacts,
    model_label_history,
    model_labels,
    models,
    runs,
)
from trainforge.tracking._store import TrackingStore
from trainforge.tracking._values import dumps, loads

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ModelRegistry"]

_JSON_FIELDS = ("metrics", "export_formats", "metadata")
_VERSION_RACE_RETRIES = 50
# how each backend names the (name, version) key in a duplicate-key error
_VERSION_KEY = ("uq_models_name_version", "models.name, models.version")


def _version_taken(err: TrackingValueError) -> bool:
    """True when the store refused a version row because another writer took the number."""
    cause = err.__cause__
    return isinstance(cause, IntegrityError) and any(k in str(cause.orig) for k in _VERSION_KEY)


class ModelRegistry:
    """Register model versions, move tags and aliases, compare versions, trace lineage.

    Args:
        database: A :class:`TrackingStore`, a URL, a plain file path, or ``None`` (default).

    Examples:
        >>> reg = ModelRegistry("runs.db")
        >>> mid = reg.register_model("mnist-mlp", checkpoint_path="ckpt/best")
        >>> reg.promote_model(mid, "production")
        >>> reg.get_model(name="mnist-mlp", tag="production")["id"] == mid
        True
    """

    def __init__(self, database: TrackingStore | str | None = None) -> None:
        self.store = database if isinstance(database, TrackingStore) else TrackingStore(database)

    def __repr__(self) -> str:
        return f"ModelRegistry({self.store.display_url!r})"

    def close(self) -> None:
        """Close the store's pooled connections."""
        self.store.dispose()

    def register_model(
        self,
        name: str,
        version: int | None = None,
        checkpoint_path: str | None = None,
        task_type: str | None = None,
        metrics: Mapping[str, float] | None = None,
        config_hash: str | None = None,
        training_run_id: int | None = None,
        parent_model_id: int | None = None,
        export_formats: Iterable[str] | None = None,
        model_size_mb: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> int:
        """Add a version of model ``name`` (``version=None``: one more than the latest).

        Raises:
            TrackingValueError: A name longer than 200 characters or text with a NUL.
            TrackingError: No checkpoint path, an unknown training run, a taken version.
            ModelNotFoundError: An unknown parent model.
        """
        check_name(name, "model name", empty=False)
        if not checkpoint_path:
            raise TrackingError(f"register_model({name!r}) needs a checkpoint_path")
        check_text(str(checkpoint_path), "checkpoint path")
        if task_type is not None:
            check_name(task_type, "task type", limit=100)
        if training_run_id is not None and not valid_id(training_run_id):
            raise TrackingError(f"training_run_id {training_run_id!r} is not a run id")
        row = {
            "name": name,
            "checkpoint_path": str(checkpoint_path),
            "task_type": task_type,
            "metrics": dumps(dict(metrics or {})),
            "config_hash": config_hash,
            "training_run_id": training_run_id,
            "parent_model_id": parent_model_id,
            "export_formats": dumps(list(export_formats or [])),
            "model_size_mb": model_size_mb,
            "metadata": dumps(dict(metadata or {})),
            "created_at": time.time(),
        }

        def write(conn: Connection) -> int:
            if (
                training_run_id is not None
                and conn.execute(select(runs.c.id).where(runs.c.id == training_run_id)).first()
                is None
            ):
                raise TrackingError(
                    f"training_run_id {training_run_id} is not a run in {self.store.display_url}"
                )
            if parent_model_id is not None:
                self._require(conn, parent_model_id)
            latest = conn.execute(
                select(func.max(models.c.version)).where(models.c.name == name)
            ).scalar()
            if (
                version is not None
                and latest is not None
                and conn.execute(
                    select(models.c.id).where(models.c.name == name, models.c.version == version)
                ).first()
                is not None
            ):
                raise TrackingError(
                    f"model {name!r} already has a version {version}",
                    hint="leave version unset to take the next number",
                )
            chosen = version if version is not None else (latest or 0) + 1
            values = {**row, "version": chosen}
            profile = _reference_profile(conn, training_run_id, metadata)
            if profile is not None:  # the model keeps its training data's profile
                values["metadata"] = dumps({**dict(metadata or {}), "reference_profile": profile})
            return inserted_id(conn.execute(insert(models).values(values)))

        # Two writers that read the same latest version race for the next one: the
        # (name, version) key refuses the second, which reads the latest again.
        for attempt in range(_VERSION_RACE_RETRIES + 1):
            try:
                return self.store.write(write)
            except TrackingValueError as err:
                if not _version_taken(err):
                    raise
                if version is not None:
                    raise TrackingError(
                        f"model {name!r} already has a version {version}",
                        hint="leave version unset to take the next number",
                    ) from None
                if attempt == _VERSION_RACE_RETRIES:
                    raise
                time.sleep(0.002 * (1 + random.random()) * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def promote_model(self, model_id: int, tag: str) -> None:
        """Move lifecycle ``tag`` to this version (it leaves the version that held it).

        Raises:
            TrackingError: ``tag`` is not one of production/staging/experimental/retired.
            ModelNotFoundError: No model with this id.
        """
        if tag not in MODEL_TAGS:
            guess = did_you_mean(tag, MODEL_TAGS, cutoff=0.4)
            raise TrackingError(
                f"unknown model tag {tag!r}; use one of {', '.join(MODEL_TAGS)}",
                hint=f"did you mean {guess!r}? (use set_alias for your own labels)"
                if guess
                else "use set_alias for your own labels",
            )
        self._move_label(model_id, tag, "tag")

    def set_alias(self, model_id: int, alias: str) -> None:
        """Point a user-defined alias (``champion``, ``v2-candidate``) at this version."""
        if alias in MODEL_TAGS:
            raise TrackingError(f"{alias!r} is a lifecycle tag; use promote_model for it")
        check_name(alias, "alias", empty=False)
        self._move_label(model_id, alias, "alias")

    def _move_label(self, model_id: int, label: str, kind: str) -> None:
        def write(conn: Connection) -> None:
            model = self._require(conn, model_id)
            held = conn.execute(select(model_labels).where(model_labels.c.name == model.name)).all()
            current = next((h for h in held if h.label == label), None)
            if current is not None and current.model_id == model_id:
                return  # already there: nothing moves, nothing to record
            # (label, kind, new model id or None when removed, previous model id)
            moves: list[tuple[str, str, int | None, int | None]] = []
            if kind == "tag":  # a version holds one lifecycle tag: its other one comes off
                moves += [
                    (h.label, "tag", None, model_id)
                    for h in held
                    if h.model_id == model_id and h.kind == "tag"
                ]
            moves.append((label, kind, model_id, current.model_id if current else None))
            conn.execute(
                delete(model_labels).where(
                    model_labels.c.name == model.name,
                    model_labels.c.label.in_([m[0] for m in moves]),
                )
            )
            now = time.time()
            conn.execute(
                insert(model_labels).values(
                    name=model.name, label=label, kind=kind, model_id=model_id, updated_at=now
                )
            )
            conn.execute(
                insert(model_label_history),
                [
                    {
                        "name": model.name,
                        "label": lbl,
                        "kind": knd,
                        "model_id": new,
                        "previous_model_id": prev,
                        "changed_at": now,
                    }
                    for lbl, knd, new, prev in moves
                ],
            )

        self.store.write(write)

    def get_model(
        self,
        model_id: int | None = None,
        *,
        name: str | None = None,
        tag: str | None = None,
        version: int | None = None,
    ) -> dict[str, Any]:
        """One version by id, or by name and a tag/alias (or version; default the latest)."""
        if model_id is None and name is None:
            if tag is None:
                raise TrackingError("get_model needs a model id, or a name (and a tag)")
            return self._by_tag_any_name(tag)

        def read(conn: Connection) -> dict[str, Any]:
            if model_id is not None:
                return self._as_dict(conn, self._require(conn, model_id))
            query = select(models).where(models.c.name == name)
            if tag is not None:
                query = query.join(model_labels, model_labels.c.model_id == models.c.id).where(
                    model_labels.c.label == tag
                )
            elif version is not None:
                query = query.where(models.c.version == version)
            row = conn.execute(query.order_by(models.c.version.desc()).limit(1)).first()
            if row is None:
                what = f" with tag {tag!r}" if tag else f" version {version}" if version else ""
                names = list(conn.execute(select(models.c.name).distinct()).scalars())
                guess = did_you_mean(str(name), names)
                raise ModelNotFoundError(
                    f"no model {name!r}{what} in {self.store.display_url}",
                    hint=f"did you mean {guess!r}?" if guess else "`trainforge registry list`",
                )
            return self._as_dict(conn, row)

        return self.store.read(read)

    def _by_tag_any_name(self, tag: str) -> dict[str, Any]:
        found = [m for m in self.list_models() if tag in m["tags"] or tag in m["aliases"]]
        if len(found) != 1:
            problem = "no model has" if not found else f"{len(found)} model names have"
            raise ModelNotFoundError(
                f"{problem} the tag {tag!r}; pass name= as well",
                hint="`trainforge registry list` shows names and tags",
            )
        return found[0]

    def list_models(self, name: str | None = None, tag: str | None = None) -> list[dict[str, Any]]:
        """All versions (optionally of one name, or holding one tag/alias), newest first."""
        query = select(models).order_by(models.c.name, models.c.version.desc())
        if name is not None:
            query = query.where(models.c.name == name)

        def read(conn: Connection) -> list[dict[str, Any]]:
            return [self._as_dict(conn, row) for row in conn.execute(query).all()]

        found = self.store.read(read)
        if tag is not None:
            found = [m for m in found if tag in m["tags"] or tag in m["aliases"]]
        return found

    def label_history(self, name: str) -> list[dict[str, Any]]:
        """Every tag and alias move of a model name, oldest first."""
        query = (
            select(model_label_history)
            .where(model_label_history.c.name == name)
            .order_by(model_label_history.c.id)
        )
        return self.store.read(lambda c: [dict(r._mapping) for r in c.execute(query)])

    def compare_models(self, model_ids: Sequence[int]) -> pd.DataFrame:
        """One row per version (index ``model_id``): name, version, size, tags and metrics."""
        import pandas as pd

        records = []
        for model_id in model_ids:
            model = self.get_model(model_id)
            record = {
                "model_id": model["id"],
                "name": model["name"],
                "version": model["version"],
                "task_type": model["task_type"],
                "model_size_mb": model["model_size_mb"],
                "tags": ",".join(model["tags"] + model["aliases"]),
                "training_run_id": model["training_run_id"],
            }
            record.update(model["metrics"])
            records.append(record)
        return pd.DataFrame.from_records(records).set_index("model_id")

    def get_lineage(self, model_id: int) -> list[dict[str, Any]]:
        """The model and its ancestors (via ``parent_model_id``), each with its training run."""

        def read(conn: Connection) -> list[dict[str, Any]]:
            chain: list[dict[str, Any]] = []
            seen: set[int] = set()
            current: int | None = model_id
            while current is not None and current not in seen:
                seen.add(current)
                model = self._as_dict(conn, self._require(conn, current))
                run = None
                if model["training_run_id"] is not None:
                    row = conn.execute(
                        select(
                            runs.c.id,
                            runs.c.name,
                            runs.c.experiment,
                            runs.c.status,
                            runs.c.config_hash,
                        ).where(runs.c.id == model["training_run_id"])
                    ).first()
                    run = None if row is None else dict(row._mapping)
                chain.append({"model": model, "run": run})
                current = model["parent_model_id"]
            return chain

        return self.store.read(read)

    def _require(self, conn: Connection, model_id: int) -> Any:
        row = None
        if valid_id(model_id):  # an id no row can have is not sent (SQLite overflows on it)
            row = conn.execute(select(models).where(models.c.id == int(model_id))).first()
        if row is None:
            raise ModelNotFoundError(
                f"no registered model with id {model_id!r} in {self.store.display_url}",
                hint="`trainforge registry list` shows the model ids",
            )
        return row

    def _as_dict(self, conn: Connection, row: Any) -> dict[str, Any]:
        model = dict(row._mapping)
        for field in _JSON_FIELDS:
            model[field] = loads(model[field])
        labels = conn.execute(
            select(model_labels.c.label, model_labels.c.kind).where(
                model_labels.c.model_id == model["id"]
            )
        ).all()
        model["tags"] = sorted(label for label, kind in labels if kind == "tag")
        model["aliases"] = sorted(label for label, kind in labels if kind == "alias")
        return model


def _reference_profile(
    conn: Connection, run_id: int | None, metadata: Mapping[str, Any] | None
) -> str | None:
    """The training run's reference profile artifact, unless the metadata names one."""
    if run_id is None or (metadata and "reference_profile" in metadata):
        return None
    query = (
        select(artifacts.c.path)
        .where(artifacts.c.run_id == run_id)
        .where(artifacts.c.path.like(f"%{REFERENCE_PROFILE_FILE}"))
        .order_by(artifacts.c.id.desc())
    )
    found = conn.execute(query).scalar()
    return None if found is None else str(found)
