#!/usr/bin/env python
"""Django's command-line utility for Appstrate."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "appstrate.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A bad environment is the operator's to fix, not a bug: the message names the variable
        # and the fix, so print it as the last line instead of burying it under a traceback.
        sys.stderr.write(f"Appstrate cannot start: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
