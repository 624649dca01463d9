"""Objects in the bucket that no image row names, and how they are removed.

They arise three ways: a worker stores a thumbnail after its image was deleted; an upload stores
originals and then its transaction fails; a user is deleted (the rows cascade, the files would
not). The first is cleaned up right after the worker's finish(), the third before the user's row
goes, and a periodic sweep removes whatever is left once it is older than ORPHAN_GRACE_SECONDS.
"""
import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import default_storage
from django.db.models import Q
from django.utils import timezone

from classifier.models import Batch, Image, delete_with_files

log = logging.getLogger(__name__)

PREFIX = "images/"
PAGE_SIZE = 1000  # names per ListObjectsV2 call, S3's maximum
CURSOR = "orphans:start-after"  # where the sweeper's next pass starts, in the cache


def thumbnails_of_vanished(outcomes):
    """The thumbnails stored for `outcomes` (as pipeline.classify_stored returns them: image first,
    thumbnail name third) whose image row is gone and that no other image shares: the image was
    deleted while its worker ran. Call it after Image.objects.finish()."""
    stored = {outcome[0].pk: outcome[2] for outcome in outcomes if outcome[2]}
    if not stored:
        return []
    present = set(Image.objects.filter(pk__in=stored).values_list("pk", flat=True))
    vanished = {name for pk, name in stored.items() if pk not in present}
    if not vanished:
        return []
    shared = set(Image.objects.filter(thumbnail__in=vanished).values_list("thumbnail", flat=True))
    return sorted(vanished - shared)


def delete_thumbnails_of_vanished(outcomes):
    """Delete what thumbnails_of_vanished() finds; returns the names deleted."""
    names = thumbnails_of_vanished(outcomes)
    if names:
        default_storage.delete_many(names)
        log.info("deleted %d thumbnail(s) of images deleted while they were classified", len(names))
    return names


def image_uuid(name):
    """The UUID folder of an object name images/<uuid>/..., or None for any other name."""
    parts = name.split("/")
    if len(parts) != 3 or parts[0] + "/" != PREFIX:
        return None
    try:
        return uuid.UUID(parts[1])
    except ValueError:
        return None


def unreferenced(names):
    """The names among `names` that no image row can own: no row has their UUID folder, and no
    row shares them as a reused thumbnail."""
    folders = {name: image_uuid(name) for name in names}
    wanted = [folder for folder in folders.values() if folder]
    present = set()
    for start in range(0, len(wanted), 500):
        present.update(Image.objects.filter(uuid__in=wanted[start:start + 500]).values_list("uuid", flat=True))
    candidates = [name for name, folder in folders.items() if folder and folder not in present]
    if not candidates:
        return []
    shared = set(Image.objects.filter(Q(thumbnail__in=candidates) | Q(file__in=candidates))
                 .values_list("thumbnail", "file").distinct())
    return sorted(set(candidates) - {name for pair in shared for name in pair})


@dataclass
class OrphanSweep:
    listed: int = 0
    deleted: list = field(default_factory=list)
    start_after: str = ""  # where a next pass would start; "" once the listing reached the end


def sweep_orphans(now=None, pages=None, start_after="", grace=None, dry_run=False):
    """Delete the objects under images/ that no row owns and that are older than `grace` seconds
    (ORPHAN_GRACE_SECONDS), listing page by page (1,000 names each) after `start_after`, at most
    `pages` pages (None: to the end). With dry_run, only report them."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.ORPHAN_GRACE_SECONDS if grace is None else grace)
    report = OrphanSweep(start_after=start_after)
    done = 0
    while pages is None or done < pages:
        found, report.start_after = default_storage.list_page(PREFIX, report.start_after, PAGE_SIZE)
        done += 1
        report.listed += len(found)
        orphans = unreferenced([name for name, modified in found if modified < cutoff])
        if orphans and not dry_run:
            default_storage.delete_many(orphans)
        report.deleted += orphans
        if not report.start_after:
            break
    if report.deleted:
        log.info("orphan sweep: %s %d object(s) no image owns", "found" if dry_run else "deleted",
                 len(report.deleted))
    return report


def sweep_orphans_step(now=None):
    """One bounded pass for the periodic sweeper: ORPHAN_SWEEP_PAGES pages, from where the previous
    pass stopped (kept in the cache; after the end, or a restart, the listing starts over)."""
    report = sweep_orphans(now, pages=settings.ORPHAN_SWEEP_PAGES, start_after=cache.get(CURSOR, ""))
    cache.set(CURSOR, report.start_after, None)
    return report


def delete_files_of_user(sender, instance, **kwargs):
    """pre_delete of a user, however deleted (admin, shell, a queryset): their batches, images and
    objects go first, the objects once the deletion commits; the cascade alone would leave the files."""
    delete_with_files(Image.objects.filter(owner=instance), batches=Batch.objects.filter(owner=instance))
