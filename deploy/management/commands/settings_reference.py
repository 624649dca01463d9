"""manage.py settings_reference: docs/settings.md, every environment variable, from one source."""
from django.core.management.base import BaseCommand, CommandError

from imgsite.settings_reference import PAGE, problems, render


class Command(BaseCommand):
    help = ("Print the settings reference (docs/settings.md) generated from imgsite/settings_reference.py and "
            "the code's defaults; --write updates the page, --check fails when it is stale or incomplete.")

    def add_arguments(self, parser):
        parser.add_argument("--write", action="store_true", help=f"write {PAGE.name} in docs/")
        parser.add_argument("--check", action="store_true", help="exit non-zero if the page is stale or incomplete")

    def handle(self, *args, write, check, **options):
        missing = problems()
        if missing:
            raise CommandError("the settings reference is incomplete:\n" + "\n".join(missing))
        page = render()
        if check:
            if not PAGE.exists() or PAGE.read_text() != page:
                raise CommandError(f"{PAGE} is stale: run `python manage.py settings_reference --write`")
            return
        if write:
            PAGE.write_text(page)
            self.stdout.write(f"wrote {PAGE}")
            return
        self.stdout.write(page, ending="")
