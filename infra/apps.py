import logging

from django.apps import AppConfig
from django.conf import settings

logger = logging.getLogger("infra")


class InfraConfig(AppConfig):
    name = "infra"
    verbose_name = "Infrastructure"

    def ready(self) -> None:
        from infra import services
        from infra.registry import get_mode

        if settings.AUTORELOAD_WATCHER:
            return  # the runserver child process does both, once
        # A misconfigured service stops web, worker and manage.py here, not at the first request.
        if settings.BOOT_CHECKS:
            services.check_boot_requirements()
        from credentials.keyring import describe as describe_key_ring

        logger.info("%s; %s", get_mode().startup_line(), describe_key_ring())
