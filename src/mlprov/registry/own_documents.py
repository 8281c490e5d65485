"""A version's own provenance, ML-BOM and model card, signed by a client elsewhere.

``mlprov sign DIR --name N`` signs a version's SLSA provenance, CycloneDX ML-BOM and
model card with the model's own signer. Locally they commit with the version. Over HTTP
the signer's key stays on the client, and the documents describe the record the server
made (its number, time and actor), so the client signs them once the version exists and
sends the signed bundles here. Before storing them, outside any transaction, this module
checks each one:

1. all three kinds are given, each bundle parses and its signature verifies with the
   key or certificate it carries, where it carries one (integrity; whether the signer
   is *trusted* stays the gate's and ``verify``'s question, as for the signature);
2. its statement is exactly the bytes this registry builds from its own record
   (:func:`mlprov.registry.evidence.version_statements`, deterministic), so a client
   cannot make a version's provenance say anything its record does not;
3. it is signed by the signer of the version's stored OMS signature, as the local path
   signs all four with one signer.

Then one write transaction stores all three as the exact bytes sent (the same kinds,
media and predicate types as a local ``sign``), compare-and-set on "none stored yet". A
repeat of the same request (a retry whose answer was lost) returns what the first one
stored; any other second set is a ConflictError.
"""

from __future__ import annotations

from collections.abc import Mapping

from mlprov.errors import ConflictError, InvalidInputError, MlprovError, VerificationError
from mlprov.manifest import Digest
from mlprov.records import Evidence
from mlprov.refs import ModelRef
from mlprov.registry._context import RegistryContext, resolve
from mlprov.registry._unit import mutation
from mlprov.registry.evidence import OWN_DOCUMENT_KINDS, add_evidence_in, version_statements
from mlprov.registry.types import NewEvidence
from mlprov.registry.versions import get_version

__all__ = ["add_signed_documents"]


def add_signed_documents(
    context: RegistryContext, ref: ModelRef | str, bundles: Mapping[str, bytes]
) -> list[Evidence]:
    """Store a version's provenance, ML-BOM and card signed elsewhere (module docstring)."""
    from mlprov import signing  # noqa: PLC0415

    given = sorted(bundles)
    if given != sorted(OWN_DOCUMENT_KINDS):
        raise InvalidInputError(
            f"give exactly the documents {', '.join(OWN_DOCUMENT_KINDS)} "
            f"(got {', '.join(k[:40] for k in given) or 'none'})"
        )
    record = get_version(context, ref)
    signatures = [e for e in record.evidence if e.kind == "signature"]
    if not signatures:
        raise InvalidInputError(
            f"{record.ref} has no signature: its documents are signed by its model signer, "
            "so sign the version first"
        )
    model_signer = signatures[-1].signer
    new: list[NewEvidence] = []
    for kind, predicate_type, statement in version_statements(record):
        bundle = bundles[kind]
        try:
            inspected = signing.inspect_attestation(bundle, limits=context.limits)
        except MlprovError as e:
            raise VerificationError(f"the {kind} bundle: {e.message}") from e
        if inspected.predicate_type != predicate_type or inspected.payload != statement:
            raise VerificationError(
                f"the {kind} is not the statement {record.ref}'s record gives: nothing was stored"
            )
        signer = str(inspected.carried.signer)
        if signer != model_signer:
            raise VerificationError(
                f"the {kind} is signed by {signer[:120]}, not by the model's signer "
                f"{model_signer[:120]}"
            )
        new.append(NewEvidence(kind, signing.BUNDLE_MEDIA_TYPE, predicate_type, bundle, signer))

    digests = {str(Digest.of_bytes(n.content)) for n in new}
    stored = [e for e in record.evidence if e.kind in OWN_DOCUMENT_KINDS]
    if stored and {e.digest for e in stored} == digests:
        return stored  # the same request again (its answer was lost): nothing to do
    with mutation(context) as unit:
        key = resolve(unit.tx, ModelRef(record.name, version=record.version))
        if any(e.kind in OWN_DOCUMENT_KINDS for e in unit.tx.evidence.records(key.id)):
            raise ConflictError(
                f"{record.ref} already has its provenance, ML-BOM and card; nothing was stored"
            )
        return [add_evidence_in(unit, key, item) for item in new]
