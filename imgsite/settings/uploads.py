"""What an upload may be: a file's size and pixels, a request's files and bytes, a .zip's members,
each user's quotas and upload rate (classifier/limits.py)."""
from django.core.exceptions import ImproperlyConfigured

from imgsite.settings.env import envint, envstr

# --- Uploads: every file goes to a temporary file, never into memory. ---
# (imgsite.filenames: Django's temporary-file handler, undoing browsers' escapes in file names.)
FILE_UPLOAD_HANDLERS = ["imgsite.filenames.UploadHandler"]
MAX_UPLOAD_BYTES = envint("MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
# Pixels per image (width × height, as the header says); larger images are refused unread.
MAX_IMAGE_PIXELS = envint("MAX_IMAGE_PIXELS", 40_000_000)
MAX_FILES_PER_REQUEST = envint("MAX_FILES_PER_REQUEST", 500)
# Uploads of one request stream to S3 this many at a time (round trips overlap).
UPLOAD_STORE_THREADS = envint("UPLOAD_STORE_THREADS", 4)
DATA_UPLOAD_MAX_NUMBER_FILES = MAX_FILES_PER_REQUEST
# --- The gallery, the REST API (Django REST Framework + drf-spectacular) and .zip uploads. ---
# A request body larger than this is refused with 413 before it is read. The gallery sends
# large selections in several requests of at most UPLOAD_REQUEST_FILES files / UPLOAD_REQUEST_BYTES.
MAX_REQUEST_BYTES = envint("MAX_REQUEST_BYTES", 256 * 1024 * 1024)
UPLOAD_REQUEST_FILES = envint("UPLOAD_REQUEST_FILES", 20)
UPLOAD_REQUEST_BYTES = envint("UPLOAD_REQUEST_BYTES", 16 * 1024 * 1024)
# A .zip is expanded on the server, one member at a time, within these limits.
MAX_ARCHIVE_BYTES = envint("MAX_ARCHIVE_BYTES", 200 * 1024 * 1024)
MAX_ARCHIVE_MEMBERS = envint("MAX_ARCHIVE_MEMBERS", MAX_FILES_PER_REQUEST)
MAX_ARCHIVE_UNCOMPRESSED_BYTES = envint("MAX_ARCHIVE_UNCOMPRESSED_BYTES", 1024 * 1024 * 1024)
MAX_ARCHIVE_RATIO = envint("MAX_ARCHIVE_RATIO", 100)
if not MAX_UPLOAD_BYTES <= MAX_ARCHIVE_BYTES <= MAX_REQUEST_BYTES:
    raise ImproperlyConfigured("Need MAX_UPLOAD_BYTES <= MAX_ARCHIVE_BYTES <= MAX_REQUEST_BYTES")

# --- Bounded work per file, per request and per user (#13): one user cannot hurt the others. ---
# A picture over 4 megapixels with more pixels than this per byte of file is refused at upload
# and in the worker: a photo never compresses that well (0 turns the check off).
MAX_PIXELS_PER_BYTE = envint("MAX_PIXELS_PER_BYTE", 200)
if MAX_PIXELS_PER_BYTE < 0:
    raise ImproperlyConfigured("MAX_PIXELS_PER_BYTE must be 0 (off) or positive")
# What one request may examine, archive members included: files, and their bytes once expanded.
MAX_IMAGES_PER_REQUEST = envint("MAX_IMAGES_PER_REQUEST", MAX_FILES_PER_REQUEST)
MAX_REQUEST_EXPANDED_BYTES = envint("MAX_REQUEST_EXPANDED_BYTES", MAX_ARCHIVE_UNCOMPRESSED_BYTES)
# Per user: images queued or processing, images queued in the last 24 hours, bytes of originals stored.
QUOTA_OPEN_IMAGES = envint("QUOTA_OPEN_IMAGES", 10_000)
QUOTA_IMAGES_PER_DAY = envint("QUOTA_IMAGES_PER_DAY", 50_000)
QUOTA_BYTES_STORED = envint("QUOTA_BYTES_STORED", 50 * 1024**3)
for _name in ("MAX_IMAGES_PER_REQUEST", "MAX_REQUEST_EXPANDED_BYTES", "QUOTA_OPEN_IMAGES", "QUOTA_IMAGES_PER_DAY",
              "QUOTA_BYTES_STORED"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be positive")
# Upload requests per user (the API's and the gallery form's together), counted in the default cache.
UPLOAD_RATE_LIMIT = envstr("UPLOAD_RATE_LIMIT", "60/min")
_count, _, _period = UPLOAD_RATE_LIMIT.partition("/")
if not (_count.isdigit() and _period[:1] in ("s", "m", "h", "d")):
    raise ImproperlyConfigured(f"UPLOAD_RATE_LIMIT={UPLOAD_RATE_LIMIT!r} must look like 60/min")
