"""Admin forms: one per credential type, built from its field schema.

Secret inputs never carry a stored value back to the browser (PasswordInput with
render_value=False, a textarea that renders empty); a blank secret input keeps the stored value.
"""

from __future__ import annotations

from django import forms

from credentials import services
from credentials.models import Credential
from credentials.types import CredentialType

LIST_HELP = "One per line (commas work too)."


class SecretTextarea(forms.Textarea):
    """A textarea for secret NAME=value lines that never renders what it holds."""

    def format_value(self, value):
        return None


class CredentialForm(forms.ModelForm):
    """Base form; `form_for_type` adds the fields of one credential type."""

    credential_type: CredentialType

    allowed_hosts = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="Hosts it may be sent to: api.example.com, api.example.com:8443, "
        "*.example.com (any subdomain), 127.0.0.1. " + LIST_HELP,
    )
    allowed_workflows = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text='Slugs of the workflows that may use it; "*" allows every workflow. ' + LIST_HELP,
    )

    class Meta:
        model = Credential
        fields = ["name", "description"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        instance = self.instance
        if not instance.pk:
            instance.type = self.credential_type.name
        self.stored = {s.field: s for s in services.secret_status(instance) if s.is_set}
        # The model holds lists; the inputs show one entry per line.
        self.initial["allowed_hosts"] = "\n".join(instance.allowed_hosts)
        self.initial["allowed_workflows"] = "\n".join(instance.allowed_workflows)
        for spec in self.credential_type.fields:
            if spec.secret:
                status = self.stored.get(spec.name)
                field = self.fields[f"secret_{spec.name}"]
                field.required = spec.required and status is None
                field.help_text = " ".join(filter(None, [_status_text(status), spec.help_text]))
            else:
                self.initial.setdefault(
                    f"field_{spec.name}", instance.fields.get(spec.name, spec.default)
                )
        if self.credential_type.dynamic_fields:
            self.initial.setdefault(
                "plain_fields", "\n".join(f"{k}={v}" for k, v in instance.fields.items())
            )
            stored = ", ".join(f"{name} ({_status_text(s)})" for name, s in self.stored.items())
            self.fields["secret_fields"].help_text += f" Stored: {stored or 'none'}."

    def clean_allowed_hosts(self) -> list[str]:
        return _split_list(self.cleaned_data["allowed_hosts"])

    def clean_allowed_workflows(self) -> list[str]:
        return _split_list(self.cleaned_data["allowed_workflows"])

    def clean_plain_fields(self) -> dict[str, str]:
        return _parse_lines(self.cleaned_data["plain_fields"], "plain_fields")

    def clean_secret_fields(self) -> dict[str, str]:
        return _parse_lines(self.cleaned_data["secret_fields"], "secret_fields")

    def values(self) -> tuple[dict[str, str], dict[str, str], list[str]]:
        """(non-secret fields, secrets to set, secrets to clear) from the cleaned data."""
        data = self.cleaned_data
        fields = {
            s.name: data.get(f"field_{s.name}", "")
            for s in self.credential_type.fields
            if not s.secret
        }
        secrets = {
            s.name: data.get(f"secret_{s.name}", "")
            for s in self.credential_type.fields
            if s.secret
        }
        clear: list[str] = []
        if self.credential_type.dynamic_fields:
            fields.update(data.get("plain_fields", {}))
            for name, value in data.get("secret_fields", {}).items():
                if value:
                    secrets[name] = value
                else:
                    clear.append(name)
        return fields, secrets, clear

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        fields, secrets, clear = self.values()
        kept = set(self.stored) - set(clear) - {k for k, v in secrets.items() if v}
        errors = services.validate_values(
            self.credential_type,
            fields={k: v for k, v in fields.items() if v},
            secrets={
                **dict.fromkeys(kept, services.KEPT),
                **{k: v for k, v in secrets.items() if v},
            },
            allowed_hosts=cleaned.get("allowed_hosts", []),
            allowed_workflows=cleaned.get("allowed_workflows", []),
        )
        for name, messages in errors.items():
            target = self._form_field(name)
            for message in messages:
                self.add_error(target, message)
        return cleaned

    def _form_field(self, name: str) -> str | None:
        for candidate in (name, f"field_{name}", f"secret_{name}"):
            if candidate in self.fields:
                return candidate
        if self.credential_type.dynamic_fields:
            return "secret_fields"
        return None


def form_for_type(credential_type: CredentialType) -> type[CredentialForm]:
    """A form class declaring the type's fields (the admin needs them declared, not added)."""
    attrs: dict[str, object] = {"credential_type": credential_type}
    for spec in credential_type.fields:
        if spec.secret:
            attrs[f"secret_{spec.name}"] = forms.CharField(
                label=spec.label,
                required=spec.required,
                widget=forms.PasswordInput(
                    render_value=False, attrs={"autocomplete": "new-password"}
                ),
            )
        else:
            attrs[f"field_{spec.name}"] = forms.CharField(
                label=spec.label, required=spec.required, help_text=spec.help_text
            )
    if credential_type.dynamic_fields:
        attrs["plain_fields"] = forms.CharField(
            label="Non-secret fields",
            widget=forms.Textarea(attrs={"rows": 3}),
            required=False,
            help_text="NAME=value, one per line.",
        )
        attrs["secret_fields"] = forms.CharField(
            label="Secret fields",
            widget=SecretTextarea(attrs={"rows": 3, "autocomplete": "off"}),
            required=False,
            help_text="NAME=value, one per line. Only the names you enter change; "
            "NAME= with nothing after it removes that field.",
        )
    return type(f"{type(credential_type).__name__}Form", (CredentialForm,), attrs)


def declared_value_fields(credential_type: CredentialType) -> list[str]:
    """The form field names that hold the type's values, in schema order."""
    names = [f"{'secret' if f.secret else 'field'}_{f.name}" for f in credential_type.fields]
    if credential_type.dynamic_fields:
        names += ["plain_fields", "secret_fields"]
    return names


class CredentialTestForm(forms.Form):
    target = forms.CharField(
        label="URL to test against",
        max_length=2000,
        widget=forms.URLInput(attrs={"size": 70, "placeholder": "https://api.example.com/me"}),
        help_text="A GET request with the credential; its host must be allowed.",
    )


def _status_text(status: services.SecretStatus | None) -> str:
    if status is None:
        return "Not set."
    if status.problem:
        return f"Set, but unreadable: {status.problem}"
    return f"Set ({status.fingerprint}, key {status.key_id}). Leave blank to keep it."


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]


def _parse_lines(text: str, field: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep:
            # Never echo the line: in the secret textarea it may be a value typed by mistake.
            raise forms.ValidationError(f"Line {number} is not NAME=value.")
        values[name.strip()] = value.strip()
    return values
