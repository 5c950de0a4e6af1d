"""Use cases of credentials: create, update, resolve for a step, rotate keys, test.

Messages of every error raised here name credentials, fields and key ids, never values.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from credentials import masking
from credentials.exceptions import CredentialError
from credentials.hosts import entry_error
from credentials.keyring import Ciphertext, get_key_ring
from credentials.models import Credential, SecretValue
from credentials.resolved import ResolvedCredential
from credentials.types import CredentialType, get_type

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from workflows.models import Workflow

# Only this many trailing characters are shown, and only of values at least this long.
FINGERPRINT_TAIL = 4
FINGERPRINT_MIN_LENGTH = 16
# Stands in for a stored secret during validation, which needs its presence, not its value.
KEPT = "<stored>"


class InvalidCredential(CredentialError):
    """Values that do not fit the credential's type; `.errors` maps field to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))


@dataclass(frozen=True)
class SecretStatus:
    field: str
    is_set: bool
    fingerprint: str = ""  # e.g. "…x9Qz" or "#3fa2c1"; never the value
    key_id: str = ""
    problem: str = ""  # why it cannot be read, when it cannot


@dataclass
class RotationReport:
    active_key: str
    rotated: int = 0
    already_current: int = 0
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"Rotated {self.rotated} value(s) to key {self.active_key}; "
            f"{self.already_current} already under it"
        )
        if self.failures:
            text += f"; {len(self.failures)} could not be read"
        return text + "."


def credential_type(credential: Credential) -> CredentialType:
    found = get_type(credential.type)
    if found is None:
        raise CredentialError(
            f"Credential {credential.name!r} has the type {credential.type!r}, which is not "
            "registered (was the app that registers it removed?)."
        )
    return found


def validate_values(
    type_: CredentialType,
    *,
    fields: dict[str, str],
    secrets: dict[str, str],
    allowed_hosts: list[str],
    allowed_workflows: list[str],
) -> dict[str, list[str]]:
    """Every problem with a credential's complete values, by field name."""
    errors: dict[str, list[str]] = {}
    for name, value in secrets.items():
        if value and len(value) < masking.MIN_SECRET_LENGTH:
            errors.setdefault(name, []).append(
                f"Secret values need at least {masking.MIN_SECRET_LENGTH} characters: "
                "shorter ones cannot be masked in logs and outputs."
            )
    if not type_.dynamic_fields:
        names = {f.name for f in type_.fields}
        for name in [*fields, *secrets]:
            if name not in names:
                errors.setdefault(name, []).append(f"{type_.label} has no field {name!r}.")
    for name, message in type_.validate(fields, secrets):
        errors.setdefault(name, []).append(message)
    for entry in allowed_hosts:
        if problem := entry_error(entry):
            errors.setdefault("allowed_hosts", []).append(problem)
    for slug in allowed_workflows:
        if slug != "*" and not _is_slug(slug):
            errors.setdefault("allowed_workflows", []).append(f"{slug!r} is not a workflow slug.")
    return errors


def create_credential(
    *,
    name: str,
    type: str,
    fields: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    allowed_hosts: list[str] | None = None,
    allowed_workflows: list[str] | None = None,
    description: str = "",
    by: AbstractBaseUser | None = None,
) -> Credential:
    credential = Credential(name=name, type=type, description=description, updated_by=by)
    return update_credential(
        credential,
        fields=fields or {},
        secrets=secrets or {},
        allowed_hosts=allowed_hosts or [],
        allowed_workflows=allowed_workflows or [],
        by=by,
    )


# Error reports (DEBUG pages, mail_admins) must not show the decrypted locals.
@sensitive_variables()
def update_credential(
    credential: Credential,
    *,
    fields: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    clear_secrets: list[str] | tuple[str, ...] = (),
    allowed_hosts: list[str] | None = None,
    allowed_workflows: list[str] | None = None,
    by: AbstractBaseUser | None = None,
) -> Credential:
    """Save changes. In `secrets`, an empty value keeps the stored one; `clear_secrets` removes.

    Raises InvalidCredential and changes nothing when the resulting values are invalid.
    """
    type_ = credential_type(credential)
    if fields is not None:
        defaults = {f.name: f.default for f in type_.fields if not f.secret and f.default}
        credential.fields = {**defaults, **{k: v for k, v in fields.items() if v != ""}}
    if allowed_hosts is not None:
        credential.allowed_hosts = [h.strip().lower() for h in allowed_hosts if h.strip()]
    if allowed_workflows is not None:
        credential.allowed_workflows = [s.strip() for s in allowed_workflows if s.strip()]
    changed = {k: v for k, v in (secrets or {}).items() if v}
    kept = set(_stored_fields(credential)) - set(clear_secrets) - set(changed)
    # Validation needs every secret's presence, not its value: stored ones stand in as "set".
    errors = validate_values(
        type_,
        fields=credential.fields,
        secrets={**dict.fromkeys(kept, KEPT), **changed},
        allowed_hosts=credential.allowed_hosts,
        allowed_workflows=credential.allowed_workflows,
    )
    if not _is_slug(credential.name):
        errors.setdefault("name", []).append("Use letters, digits, '-' and '_'.")
    elif Credential.objects.filter(name=credential.name).exclude(pk=credential.pk).exists():
        errors.setdefault("name", []).append(f"A credential named {credential.name!r} exists.")
    if errors:
        raise InvalidCredential(errors)
    credential.updated_by = by
    with transaction.atomic():
        credential.save()
        credential.secrets.filter(field__in=[*clear_secrets, *changed]).delete()
        for name, value in changed.items():
            _store_secret(credential, name, value)
    masking.remember(changed.values())
    return credential


def check_reference(name: str, workflow_slug: str) -> str | None:
    """Why workflow `workflow_slug` may not reference credential `name`, or None when fine."""
    credential = Credential.objects.filter(name=name).first()
    if credential is None:
        return f"Credential {name!r} does not exist."
    if not credential.allows_workflow(workflow_slug):
        return f"Workflow {workflow_slug!r} may not use credential {name!r}."
    return None


def resolve(name: str, *, workflow_slug: str) -> ResolvedCredential:
    """Decrypt credential `name` for a step of `workflow_slug`, or raise CredentialError."""
    problem = check_reference(name, workflow_slug)
    if problem:
        raise CredentialError(problem)
    return resolve_credential(Credential.objects.get(name=name))


@sensitive_variables()
def resolve_credential(credential: Credential) -> ResolvedCredential:
    """Decrypt `credential` regardless of which workflow asks (the admin's test action)."""
    type_ = credential_type(credential)
    secrets = read_secrets(credential)
    values = {**credential.fields, **secrets}
    missing = [f.name for f in type_.fields if f.required and not values.get(f.name)]
    if missing:
        raise CredentialError(f"Credential {credential.name!r} has no value for {missing[0]!r}.")
    resolved = ResolvedCredential(
        name=credential.name,
        type=type_,
        allowed_hosts=tuple(credential.allowed_hosts),
        values=values,
        secret_fields=frozenset(secrets),
    )
    masking.remember(resolved.secrets)
    return resolved


@sensitive_variables()
def read_secrets(credential: Credential) -> dict[str, str]:
    ring = get_key_ring()
    return {
        stored.field: ring.decrypt(
            Ciphertext(stored.key_id, stored.ciphertext),
            associated_data=stored.associated_data,
            where=_where(credential, stored.field),
        )
        for stored in credential.secrets.all()
    }


@sensitive_variables()
def secret_status(credential: Credential) -> list[SecretStatus]:
    """Set / not set and a fingerprint for each secret field, for the admin."""
    type_ = get_type(credential.type)
    stored = {s.field: s for s in credential.secrets.all()} if credential.pk else {}
    names = [f.name for f in type_.fields if f.secret] if type_ else []
    names += [n for n in stored if n not in names]
    ring = get_key_ring()
    statuses = []
    for name in names:
        if name not in stored:
            statuses.append(SecretStatus(name, is_set=False))
            continue
        value = stored[name]
        try:
            plain = ring.decrypt(
                Ciphertext(value.key_id, value.ciphertext),
                associated_data=value.associated_data,
                where=_where(credential, name),
            )
        except CredentialError as exc:
            statuses.append(SecretStatus(name, True, key_id=value.key_id, problem=str(exc)))
            continue
        statuses.append(SecretStatus(name, True, fingerprint(plain), key_id=value.key_id))
    return statuses


@sensitive_variables()
def fingerprint(value: str) -> str:
    """The last characters of a long value; a keyed short hash of a short one, which would
    otherwise be half revealed."""
    if len(value) >= FINGERPRINT_MIN_LENGTH:
        return "…" + value[-FINGERPRINT_TAIL:]
    digest = hmac.new(settings.SECRET_KEY.encode(), value.encode(), hashlib.sha256)
    return "#" + digest.hexdigest()[:6]


def workflows_using(name: str) -> list[Workflow]:
    """Workflows whose current version has a step naming credential `name`."""
    from workflows.models import Workflow

    found = []
    for workflow in Workflow.objects.select_related("current_version"):
        definition = workflow.current_version.definition if workflow.current_version else {}
        steps = definition.get("steps", []) if isinstance(definition, dict) else []
        if any(name in step_credentials(step) for step in steps if isinstance(step, dict)):
            found.append(workflow)
    return found


def step_credentials(step: dict[str, Any]) -> set[str]:
    """Names of the credentials a step's config refers to (http and script conventions)."""
    config = step.get("config") or {}
    if not isinstance(config, dict):
        return set()
    names = set()
    if isinstance(config.get("credential"), str):
        names.add(config["credential"])
    if isinstance(config.get("credentials"), dict):
        names |= {
            ref.split(".")[0] for ref in config["credentials"].values() if isinstance(ref, str)
        }
    return names


def rotate_credentials(*, limit: int | None = None) -> RotationReport:
    """Re-encrypt every value under the active key, one row per transaction.

    Safe to interrupt and to run again: each row is either still under its old key (and
    readable) or already under the new one.
    """
    ring = get_key_ring()
    report = RotationReport(active_key=ring.active_id)
    report.already_current = SecretValue.objects.filter(key_id=ring.active_id).count()
    pending = SecretValue.objects.exclude(key_id=ring.active_id).order_by("pk")
    for pk in pending.values_list("pk", flat=True):
        if limit is not None and report.rotated >= limit:
            break
        try:
            if _rotate_one(pk):
                report.rotated += 1
        except CredentialError as exc:
            report.failures.append(str(exc))
    return report


@sensitive_variables()
def _rotate_one(pk: int) -> bool:
    ring = get_key_ring()
    with transaction.atomic():
        stored = SecretValue.objects.select_for_update().filter(pk=pk).first()
        if stored is None or stored.key_id == ring.active_id:
            return False  # deleted or rotated by a concurrent run meanwhile
        credential = Credential.objects.get(pk=stored.credential_id)
        plain = ring.decrypt(
            Ciphertext(stored.key_id, stored.ciphertext),
            associated_data=stored.associated_data,
            where=_where(credential, stored.field),
        )
        sealed = ring.encrypt(plain, associated_data=stored.associated_data)
        stored.key_id, stored.ciphertext = sealed.key_id, sealed.data
        stored.save(update_fields=["key_id", "ciphertext", "updated_at"])
    return True


@sensitive_variables()
def test_credential(credential: Credential, target: str) -> str:
    """Run the type's test against `target`; CredentialError says why it failed."""
    resolved = resolve_credential(credential)
    try:
        return masking.mask(resolved.type.test(resolved, target), resolved.secrets)
    except CredentialError as exc:
        raise CredentialError(masking.mask(str(exc), resolved.secrets)) from None


@sensitive_variables()
def _store_secret(credential: Credential, name: str, value: str) -> None:
    stored = SecretValue(credential=credential, field=name)
    sealed = get_key_ring().encrypt(value, associated_data=stored.associated_data)
    stored.key_id, stored.ciphertext = sealed.key_id, sealed.data
    stored.save()


def _stored_fields(credential: Credential) -> list[str]:
    if not credential.pk:
        return []
    return list(credential.secrets.values_list("field", flat=True))


def _where(credential: Credential, name: str) -> str:
    return f"credential {credential.name!r} field {name!r}"


def _is_slug(value: str) -> bool:
    return bool(value) and all(c.isalnum() or c in "-_" for c in value) and value.isascii()
