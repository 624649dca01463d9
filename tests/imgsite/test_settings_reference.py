"""docs/settings.md names every environment variable the code reads, and is up to date."""
import textwrap
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from imgsite import settings_reference
from imgsite.settings_reference import PAGE, environment_reads, problems, reads_in, render


def test_every_variable_the_code_reads_is_in_the_reference():
    assert problems() == []


def test_the_page_is_up_to_date():
    assert PAGE.read_text() == render(), "run `python manage.py settings_reference --write`"


def test_the_command_checks_the_page(monkeypatch, tmp_path):
    call_command("settings_reference", "--check")  # the committed page is current
    stale = tmp_path / "settings.md"
    stale.write_text("# old\n")
    monkeypatch.setattr("deploy.management.commands.settings_reference.PAGE", stale)
    with pytest.raises(CommandError, match="is stale"):
        call_command("settings_reference", "--check")
    call_command("settings_reference", "--write", stdout=StringIO())
    assert stale.read_text() == render()


def test_it_finds_every_way_of_reading_the_environment(tmp_path):
    source = tmp_path / "settings.py"
    source.write_text(textwrap.dedent('''
        import os
        from os import environ

        def optional_seconds(name):
            return envfloat(name, 0) if envstr(name) else None

        A = envstr("A_STR", "x")
        B = envint("B_INT", 3)
        C = envbool("C_BOOL")
        D = envfloat("D_FLOAT", 0.5)
        E = os.environ.get("E_GET", "e")
        F = os.getenv("F_GETENV")
        G = os.environ["G_ITEM"]
        H = environ.get("H_BARE")
        I = optional_seconds("I_WRAPPED")
        J = {"key": envint("J_IN_A_DICT", 2 * 60)}
        os.environ.setdefault("K_SETDEFAULT", "k")
        not_a_setting = envstr(some_variable)
    '''))

    assert dict(reads_in(source)) == {
        "A_STR": '"x"', "B_INT": "3", "C_BOOL": "'False'", "D_FLOAT": "0.5", "E_GET": '"e"', "F_GETENV": None,
        "G_ITEM": None, "H_BARE": None, "I_WRAPPED": None, "J_IN_A_DICT": "2 * 60", "K_SETDEFAULT": '"k"',
    }


def test_a_new_setting_without_a_line_fails_with_a_message_saying_what_to_do(tmp_path, monkeypatch):
    for package in settings_reference.SOURCES:
        (tmp_path / package).mkdir()
    (tmp_path / "imgsite" / "settings.py").write_text('DEBUG = envbool("DEBUG")\nNEW = envint("BRAND_NEW", 1)\n')
    monkeypatch.setattr(settings_reference, "REFERENCE", {"Core": [
        ("DEBUG", ("web",), "Development mode.", None), ("GONE", ("web",), "Read no more.", None)]})

    assert "BRAND_NEW" in environment_reads(tmp_path)
    assert problems(tmp_path) == [
        "BRAND_NEW is read in imgsite/settings.py but missing from imgsite/settings_reference.py: "
        "add a line for it to REFERENCE",
        "GONE is in imgsite/settings_reference.py but no code reads it: remove its line",
    ]


def test_the_page_shows_defaults_tiers_and_meanings():
    page = render()
    assert "| `MAX_UPLOAD_BYTES` | `20 * 1024 * 1024` | web, worker | Largest image file accepted. |" in page
    assert "| `LOG_FORMAT` | `plain` | web, worker, autoscaler |" in page
    assert "| `SENTRY_DSN` | empty |" in page
