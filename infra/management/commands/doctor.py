from django.core.management.base import BaseCommand, CommandError

from credentials.keyring import describe as describe_key_ring
from infra.registry import get_mode
from infra.services import probe_all


class Command(BaseCommand):
    help = "Show the active tier and the adapter for each port, and check each service answers."

    def handle(self, *args, **options):
        mode = get_mode()
        self.stdout.write(f"Appstrate tier {mode.tier}\n")
        self.stdout.write(f"{'port':<16} adapter")
        for port, adapter in mode.ports().items():
            self.stdout.write(f"{port:<16} {adapter}")
        # Key ids and where they came from; never key material (credentials.keyring.describe).
        self.stdout.write(f"\n{describe_key_ring()}")
        self.stdout.write(f"\n{'service':<16} {'adapter':<12} status")
        down = []
        for probe in probe_all():
            status = "ok" if probe.ok else "DOWN"
            self.stdout.write(f"{probe.service:<16} {probe.adapter:<12} {status}  {probe.detail}")
            if not probe.ok:
                down.append(probe.service)
        if down:
            raise CommandError(f"Service(s) down: {', '.join(down)}")
        return "All services answer."
