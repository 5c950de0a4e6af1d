from django.apps import AppConfig


class CredentialsConfig(AppConfig):
    name = "credentials"

    def ready(self) -> None:
        from credentials import masking
        from credentials.keyring import get_key_ring

        masking.install_log_masking()
        # A malformed CREDENTIALS_KEYS stops every process here, naming the entry to fix.
        get_key_ring()
