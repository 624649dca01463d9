"""Uploaded file names as the user's system named them.

Browsers (and curl, and urllib3) send a file name in multipart/form-data with three characters
percent-escaped, as the HTML standard says: `"` as %22, LF as %0A and CR as %0D; and nothing else,
not even `%` itself. Django's parser keeps those escapes, so `a "quoted" name.jpg` would show as
`a %22quoted%22 name.jpg`. The upload handler below undoes them, the one place every upload path
(the form, the API, DRF's parser) passes through. The name is for display only: it is never a path.
"""
import re

from django.core.files.uploadhandler import TemporaryFileUploadHandler

FORM_ESCAPES = {"%22": '"', "%0A": "\n", "%0D": "\r"}
FORM_ESCAPE = re.compile("|".join(FORM_ESCAPES))


def unescape_form_name(name):
    """A multipart file name with the HTML standard's escapes undone (a name that really holds
    "%22" cannot be told apart from an escaped quote, so it shows as a quote)."""
    return FORM_ESCAPE.sub(lambda match: FORM_ESCAPES[match.group()], name) if name else name


class UploadHandler(TemporaryFileUploadHandler):
    """Django's temporary-file handler (uploads go to disk, never into memory), with the file
    name unescaped."""

    def new_file(self, field_name, file_name, *args, **kwargs):
        super().new_file(field_name, unescape_form_name(file_name), *args, **kwargs)
