import signal

from django.core.management.base import BaseCommand, CommandError

from workflows.scheduler import Scheduler


class Command(BaseCommand):
    help = (
        "Fire workflow schedules and re-dispatch stranded or orphaned runs (tier 2+; "
        "several may run at once)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Do one tick and exit.")
        parser.add_argument(
            "--tick", type=float, default=None, help="Seconds between ticks (default: setting)."
        )
        parser.add_argument("--sweep", type=float, default=None, help="Seconds between run sweeps.")

    def handle(self, *args, once=False, tick=None, sweep=None, **options):
        for name, value in (("--tick", tick), ("--sweep", sweep)):
            if value is not None and not 0 < value <= 3600:
                raise CommandError(f"{name} must be a number of seconds between 0 and 3600")
        scheduler = Scheduler(tick_seconds=tick, sweep_seconds=sweep)
        if once:
            return f"Started {scheduler.tick()} scheduled run(s)"
        # SIGTERM (docker stop) ends the loop between ticks, never inside a claim.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: scheduler.stopping.set())
        self.stdout.write(f"Scheduler running, a tick every {scheduler.tick_seconds}s")
        scheduler.run_forever()
        return "Scheduler stopped"
