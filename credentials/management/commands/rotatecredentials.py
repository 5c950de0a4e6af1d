from django.core.management.base import BaseCommand, CommandError

from credentials.keyring import KEY_ID_RE, generate_key_entry, get_key_ring
from credentials.services import rotate_credentials


class Command(BaseCommand):
    help = (
        "Re-encrypt every credential value under the active (first) key of CREDENTIALS_KEYS. "
        "Row by row, each in its own transaction: safe to interrupt and to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--limit",
            type=int,
            default=None,
            help="Rotate at most this many values, then stop (run again to continue).",
        )
        parser.add_argument(
            "--generate-key",
            metavar="KEY_ID",
            help="Print a new ID:BASE64KEY entry to put first in CREDENTIALS_KEYS, and exit.",
        )

    def handle(self, *args, **options):
        if options["generate_key"] is not None:
            if not KEY_ID_RE.match(options["generate_key"]):
                raise CommandError("KEY_ID must be 1 to 32 letters, digits, '.', '_' or '-'.")
            # The one place key material is printed: on purpose, to the operator's terminal.
            self.stdout.write(generate_key_entry(options["generate_key"]))
            return None
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError("--limit must be 1 or more.")
        ring = get_key_ring()
        self.stdout.write(f"Active key {ring.active_id}; ring holds {', '.join(ring.key_ids)}.")
        report = rotate_credentials(limit=options["limit"])
        for failure in report.failures:
            self.stderr.write(failure)
        if report.failures:
            raise CommandError(report.summary())
        return report.summary()
