"""The training-script API: capture a run's inputs as it happens, then sign and register.

::

    import mlprov
    from mlprov.signing import KeySigner

    with mlprov.training_run(
        name="credit-risk",
        params=config,                                   # nested dicts are kept whole
        datasets={"train": "data/train.parquet",         # local: hashed now
                  "eval": "s3://bucket/eval@sha256:..."},  # remote: digest given
        lineage=[("base", "credit-risk-base@production")],
    ) as run:
        model = train(config)
        run.log_metrics({"auc": 0.91})
        run.log_metric("auc", 0.88, subgroup={"segment": "retail"})
        save(model, "out/")
        version = run.sign_and_register("out/", signer=KeySigner.from_pem(pem))

What is captured without being asked: the run id and start time when the block starts,
the finish time at registration, the git repository, commit and dirty flag of the
working directory's checkout, and the Python environment the script runs in (the
environment that actually trained the model, which is why it is captured here and not
by the CLI unless asked). If the block raises, nothing is registered.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlprov.errors import ConflictError, InvalidInputError

if TYPE_CHECKING:
    from mlprov.provenance import RunInfo
    from mlprov.records import ModelVersion
    from mlprov.registry import DatasetInput, LineageInput, Registry
    from mlprov.signing import Signer

__all__ = ["TrainingRun", "training_run"]


class TrainingRun:
    """One training run being recorded. Create it with :func:`training_run`."""

    def __init__(
        self,
        registry: Registry,
        name: str,
        *,
        params: Mapping[str, Any],
        datasets: Sequence[DatasetInput],
        lineage: Sequence[LineageInput],
        run: RunInfo,
        description: str,
        tags: Mapping[str, str],
        capture_git: bool,
        capture_environment: bool,
        card: Mapping[str, Any] | None,
    ) -> None:
        from mlprov import provenance  # noqa: PLC0415

        self.registry = registry
        self.name = name
        self.params: dict[str, Any] = dict(params)
        self.metrics: dict[str, Any] = {}
        self.datasets = list(datasets)
        self.lineage = list(lineage)
        self.run = run
        self.description = description
        self.tags = dict(tags)
        self.card = dict(card) if card is not None else None
        self.git = provenance.detect_git(Path.cwd()) if capture_git else None
        self.environment = (
            provenance.capture_environment().lock_lines if capture_environment else None
        )
        self.version: ModelVersion | None = None

    @property
    def run_id(self) -> str:
        return self.run.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Add params; a name logged twice with another value is refused."""
        for key, value in params.items():
            if key in self.params and self.params[key] != value:
                raise ConflictError(f"param {key!r} was already logged as {self.params[key]!r}")
            self.params[key] = value

    def log_metric(
        self, name: str, value: float, *, subgroup: Mapping[str, str] | None = None
    ) -> None:
        """Log one metric, optionally for a subgroup (``{"segment": "retail"}``)."""
        from mlprov.provenance import MetricKey  # noqa: PLC0415

        key = str(MetricKey(name, tuple(sorted((subgroup or {}).items()))))
        self.log_metrics({key: value})

    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Log metrics (flat keys such as ``auc[segment=retail]``, or a ``subgroups`` map)."""
        from mlprov.provenance import normalize_metrics  # noqa: PLC0415

        for key, value in normalize_metrics(metrics).items():
            if key in self.metrics and self.metrics[key] != value:
                raise ConflictError(f"metric {key!r} was already logged as {self.metrics[key]!r}")
            self.metrics[key] = value

    def version_input(self) -> Any:
        """Everything captured so far, as the registry records it (the run finishes now)."""
        from mlprov.registry import VersionInput  # noqa: PLC0415

        finished = self.run.finish()
        return VersionInput(
            params=self.params,
            metrics=self.metrics,
            tags=self.tags,
            description=self.description,
            datasets=self.datasets,
            lineage=self.lineage,
            run_id=finished.run_id,
            code_repo=self.git.repo_url if self.git else None,
            code_commit=self.git.commit if self.git else None,
            code_dirty=self.git.dirty if self.git else None,
            builder_id=finished.builder_id,
            started_at=finished.started_on,
            finished_at=finished.finished_on,
            environment=self.environment,
            card=self.card,
        )

    def _once(self) -> None:
        if self.version is not None:
            raise ConflictError(f"this run already registered {self.version.ref}")

    def register(self, path: str | Path, **options: Any) -> ModelVersion:
        """Register the trained model without signing it (see :meth:`sign_and_register`)."""
        self._once()
        self.version = self.registry.register(
            Path(path), self.name, self.version_input(), **options
        )
        return self.version

    def sign_and_register(
        self, path: str | Path, *, signer: Signer, **options: Any
    ) -> ModelVersion:
        """Sign the trained model and register it with signed provenance, ML-BOM and card.

        Options are those of :meth:`mlprov.registry.Registry.sign_and_register`
        (``signature_path``, ``hash_algorithm``, ``ignore_paths`` ...).
        """
        self._once()
        signed = self.registry.sign_and_register(
            Path(path), self.name, signer, self.version_input(), **options
        )
        self.version = signed.version
        return signed.version


@contextlib.contextmanager
def training_run(
    name: str,
    *,
    params: Mapping[str, Any] | None = None,
    datasets: Mapping[str, str | Path] | None = None,
    lineage: Sequence[tuple[str, str]] = (),
    description: str = "",
    tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
    builder_id: str | None = None,
    card: Mapping[str, Any] | str | Path | None = None,
    capture_git: bool = True,
    capture_environment: bool = True,
    registry: Registry | None = None,
) -> Iterator[TrainingRun]:
    """Record a training run; see the module docstring.

    ``datasets`` maps a name to a local path (hashed now) or ``URI@sha256:HEX``.
    ``lineage`` lists ``(relation, target)`` pairs: a registered ``name@alias`` or
    ``name/3``, or an external ``URI@sha256:HEX``. ``card`` is the model card's prose, a
    mapping or a YAML/JSON file. Everything is validated when the block starts, so a bad
    input fails before any training time is spent.
    """
    from mlprov import provenance  # noqa: PLC0415
    from mlprov.refs import validate_model_name  # noqa: PLC0415
    from mlprov.registry import DatasetInput, LineageInput, open_registry  # noqa: PLC0415

    validate_model_name(name)
    captured: list[DatasetInput] = []
    for dataset_name, location in (datasets or {}).items():
        spec_name, where, digest = provenance.parse_dataset_spec(f"{dataset_name}={location}")
        ref = provenance.capture_dataset(spec_name, where, digest=digest)
        captured.append(DatasetInput(ref.name, ref.uri, ref.digest))
    edges = [LineageInput(relation, target) for relation, target in lineage]
    if isinstance(card, str | Path):
        card_spec: Mapping[str, Any] | None = provenance.load_card(card).to_json()
    elif card is not None:
        card_spec = provenance.ModelCardSpec.parse(card).to_json()
    else:
        card_spec = None
    owned = registry is None
    active = registry or open_registry()
    try:
        active.check_lineage(edges)
        run = TrainingRun(
            active,
            name,
            params=params or {},
            datasets=captured,
            lineage=edges,
            run=provenance.start_run(run_id=run_id, builder_id=builder_id),
            description=description,
            tags=tags or {},
            capture_git=capture_git,
            capture_environment=capture_environment,
            card=card_spec,
        )
        if params is not None and not isinstance(params, Mapping):
            raise InvalidInputError("params must be a mapping")
        yield run
    finally:
        if owned:
            active.close()
