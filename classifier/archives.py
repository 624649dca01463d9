"""Expanding a .zip upload on the server, one member at a time, within limits.

No path from the archive is ever used: a member only contributes its base name, for
display. Limits are checked on the central directory before anything is extracted, and
zipfile never inflates a member past the size the directory declares.
"""
import lzma
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile, UploadedFile

from classifier.headers import UndecodableImage, size_problem

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
ZIP_CONTENT_TYPES = {"application/zip", "application/x-zip-compressed", "application/x-zip"}
CHUNK = 1024 * 1024
# Small members may compress very well (a flat-colour BMP); only large ones can hurt.
RATIO_EXEMPT_BYTES = 1024 * 1024
NO_IMAGES = ("empty_archive", "The archive contains no usable images: put JPEG, PNG, GIF, WebP, AVIF, HEIC, BMP "
                              "or TIFF files in the .zip.")


class RefusedArchive(UndecodableImage):
    """The whole archive is refused: `code` for programs, str(exc) for people."""


@dataclass
class Member:
    name: str
    file: UploadedFile | None = None
    problem: UndecodableImage | None = None


def is_archive(upload):
    """A .zip by name or declared type, and by its first bytes."""
    named_zip = PurePosixPath(upload.name or "").suffix.lower() == ".zip"
    if not named_zip and upload.content_type not in ZIP_CONTENT_TYPES:
        return False
    upload.file.seek(0)
    head = upload.file.read(4)
    upload.file.seek(0)
    return head in ZIP_MAGIC


def is_junk(info):
    """Directories and macOS resource forks, skipped without a word."""
    path = PurePosixPath(info.filename.replace("\\", "/"))
    return info.is_dir() or "__MACOSX" in path.parts or path.name.startswith("._") or path.name == ".DS_Store"


def base_name(info):
    return PurePosixPath(info.filename.replace("\\", "/")).name


def check_archive(upload, archive):
    """The members worth expanding, or RefusedArchive if the archive breaks a limit."""
    if upload.size > settings.MAX_ARCHIVE_BYTES:
        raise RefusedArchive(
            "too_large", f"The archive is too large: {upload.size:,} bytes (limit {settings.MAX_ARCHIVE_BYTES:,})."
        )
    members = [info for info in archive.infolist() if not is_junk(info)]
    if len(members) > settings.MAX_ARCHIVE_MEMBERS:
        raise RefusedArchive(
            "archive_limit",
            f"The archive holds {len(members):,} files (limit {settings.MAX_ARCHIVE_MEMBERS:,}): split it."
        )
    total = sum(info.file_size for info in members)
    if total > settings.MAX_ARCHIVE_UNCOMPRESSED_BYTES:
        raise RefusedArchive(
            "archive_limit",
            f"The archive expands to {total:,} bytes (limit {settings.MAX_ARCHIVE_UNCOMPRESSED_BYTES:,}): split it."
        )
    # Many small members, each exempt from the member's own ratio, can still add up to a bomb.
    admitted = [info for info in members if not member_problem(info)]
    expanded = sum(info.file_size for info in admitted)
    ratio = expanded / max(1, sum(info.compress_size for info in admitted))
    if expanded > RATIO_EXEMPT_BYTES and ratio > settings.MAX_ARCHIVE_RATIO:
        raise RefusedArchive("archive_limit", f"The archive's files are compressed {ratio:,.0f}:1 together (limit "
                                              f"{settings.MAX_ARCHIVE_RATIO}:1); photos never compress that well.")
    return members


def member_problem(info):
    """Why a member cannot be expanded (an UndecodableImage), judged from the directory alone; or None."""
    if info.flag_bits & 0x1:
        return UndecodableImage("encrypted", "The file is encrypted in the archive.")
    if problem := size_problem(info.file_size):
        return problem
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > RATIO_EXEMPT_BYTES and ratio > settings.MAX_ARCHIVE_RATIO:
        return UndecodableImage("archive_limit", f"Compressed {ratio:,.0f}:1 in the archive (limit "
                                f"{settings.MAX_ARCHIVE_RATIO}:1); a photo never compresses that well.")
    return None


def extract(archive, info):
    """Copy one member to a temporary file in chunks; never more than its declared size."""
    temporary = TemporaryUploadedFile(base_name(info), "application/octet-stream", info.file_size, None)
    try:
        with archive.open(info) as source:
            for chunk in iter(lambda: source.read(CHUNK), b""):
                temporary.write(chunk)
        temporary.size = temporary.tell()
        temporary.seek(0)
    except Exception:
        temporary.close()
        raise
    return temporary


def expand_archive(upload, admit=None):
    """Yield a Member per file in the archive: a temporary file to check, or a refusal.

    Raises RefusedArchive before yielding anything when the archive itself is unusable.
    `admit(size)` is called before each member is extracted (an exception from it ends the
    expansion). Each temporary file is deleted as soon as the caller asks for the next member.
    """
    try:
        archive = zipfile.ZipFile(upload.file)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise RefusedArchive("truncated", "The archive is corrupt or not a .zip file.") from None
    with archive:
        for info in check_archive(upload, archive):
            name = base_name(info) or "unnamed"
            if problem := member_problem(info):
                yield Member(name, problem=problem)
                continue
            if admit:
                admit(info.file_size)
            try:
                temporary = extract(archive, info)
            except NotImplementedError:
                yield Member(name, problem=UndecodableImage(
                    "unsupported", "The archive uses a compression method that is not supported."))
                continue
            except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, OSError, EOFError):
                yield Member(name, problem=UndecodableImage(
                    "truncated", "The file is corrupt in the archive (bad checksum or data)."))
                continue
            try:
                yield Member(name, temporary)
            finally:
                temporary.close()
