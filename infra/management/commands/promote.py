from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from infra.promotion import PromotionError, promote
from infra.registry import get_mode, get_storage


class Command(BaseCommand):
    help = (
        "Copy every row of the tier 0 SQLite file into the PostgreSQL database named by "
        "DATABASE_URL (and, with S3_BUCKET set, every stored file into the bucket), then verify "
        "the counts per table."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--from",
            dest="source",
            default=f"sqlite:///{settings.DATA_DIR / 'db.sqlite3'}",
            help="The SQLite database to copy, as sqlite:///PATH or a path "
            "(default: the tier 0 file in APPSTRATE_DATA_DIR).",
        )
        parser.add_argument(
            "--files-from",
            default=str(settings.DATA_DIR / "storage"),
            help="The tier 0 storage folder whose files go to S3 (default: data/storage).",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Replace whatever the target database holds (refused otherwise).",
        )

    def handle(self, *args, source, files_from, force, **options):
        to_s3 = get_mode().storage == "s3"
        try:
            report = promote(
                source,
                force=force,
                files_from=Path(files_from) if to_s3 else None,
                files_to=get_storage() if to_s3 else None,
            )
        except PromotionError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{'table':<40} {'sqlite':>8} {'postgres':>8}")
        for count in report.tables:
            if count.source or count.target:
                mark = "" if count.ok else "  MISMATCH"
                self.stdout.write(f"{count.table:<40} {count.source:>8} {count.target:>8}{mark}")
        if to_s3:
            self.stdout.write(
                f"files: {report.files_copied} copied, {report.files_present} already there, "
                f"{report.files_expected} in the source"
            )
        if not report.ok:
            raise CommandError("Verification failed: see MISMATCH above.")
        secrets = sum(c.target for c in report.tables if c.table.startswith("credentials_"))
        if secrets:
            # Rows are copied as stored: encrypted under the key ring the tier 0 process used.
            self.stdout.write(
                "Credentials were copied encrypted: give every process the same "
                "CREDENTIALS_KEYS (or the same data dir's development key file)."
            )
        files = f", {report.files_copied + report.files_present} files" if to_s3 else ""
        return (
            f"Promoted {report.rows} rows in {len(report.tables)} tables{files}; counts verified."
        )
