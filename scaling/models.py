"""What the autoscaler knows from the database: worker heartbeats and its own decisions."""
from datetime import timedelta

from django.db import IntegrityError, models, transaction
from django.utils import timezone


class WorkerNodeQuerySet(models.QuerySet):
    def drained_names(self, now, stale_after):
        """Draining nodes whose worker has stopped, or stopped reporting: safe to terminate."""
        stale = now - timedelta(seconds=stale_after)
        return set(self.filter(draining=True).filter(
            models.Q(stopped_at__isnull=False) | models.Q(last_heartbeat__lt=stale)
        ).values_list("name", flat=True))



class WorkerNode(models.Model):
    name = models.CharField(max_length=100, unique=True,
                            help_text="The node id: an EC2 instance id, or local-N for a local process.")
    last_heartbeat = models.DateTimeField(default=timezone.now, help_text="When the node last reported in.")
    started_at = models.DateTimeField(default=timezone.now, help_text="When its worker process started.")
    draining = models.BooleanField(default=False,
                                   help_text="Set by the autoscaler: finish the current task, then stop.")
    stopped_at = models.DateTimeField(null=True, blank=True, help_text="When its worker shut down, if it did.")

    objects = WorkerNodeQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["last_heartbeat"], name="workernode_heartbeat_idx")]

    def __str__(self):
        return self.name

    @classmethod
    def report_started(cls, name):
        cls.objects.update_or_create(name=name, defaults={
            "draining": False, "stopped_at": None,
            "last_heartbeat": timezone.now(), "started_at": timezone.now(),
        })

    @classmethod
    def report_stopped(cls, name):
        cls.objects.filter(name=name).update(stopped_at=timezone.now())

    @classmethod
    def ask_to_drain(cls, names):
        """Flag these nodes to drain; a name with no row (its worker never reported) is skipped."""
        cls.objects.filter(name__in=names).update(draining=True)

    @classmethod
    def heartbeat(cls, name):
        """Returns True when the autoscaler asked this node to drain."""
        cls.objects.filter(name=name).update(last_heartbeat=timezone.now())
        return cls.objects.filter(name=name, draining=True).exists()


class ScalingEventQuerySet(models.QuerySet):
    def history(self, since):
        """Real decisions since `since`, oldest first: what a restarted autoscaler remembers.
        Dry runs and failed passes decided nothing, so they are left out."""
        return self.filter(created_at__gte=since, dry_run=False, error="").order_by("created_at", "id")


class ScalingEvent(models.Model):
    created_at = models.DateTimeField(default=timezone.now, help_text="When the autoscaler made this pass.")
    last_seen_at = models.DateTimeField(
        null=True, blank=True,
        help_text="The last of the identical passes folded into this row (same reading, same decision).")
    repeats = models.PositiveIntegerField(default=1, help_text="How many identical passes this row stands for.")
    backend = models.CharField(max_length=10, help_text="The fleet backend: ec2, asg or local.")
    visible = models.PositiveIntegerField(default=0, help_text="Messages waiting in the queue.")
    in_flight = models.PositiveIntegerField(default=0, help_text="Messages a worker has received and not finished.")
    delayed = models.PositiveIntegerField(default=0, help_text="Messages not yet visible.")
    open_images = models.PositiveIntegerField(default=0, help_text="Images queued or processing.")
    booting = models.PositiveIntegerField(default=0, help_text="Nodes launched but not yet running.")
    running = models.PositiveIntegerField(default=0, help_text="Nodes running (excluding draining ones).")
    draining = models.PositiveIntegerField(default=0, help_text="Nodes finishing their task before retiring.")
    busy = models.PositiveIntegerField(default=0, help_text="Booting or running nodes running a task.")
    seconds_per_image = models.FloatField(null=True, blank=True, help_text="Recent node-seconds per image.")
    arrived = models.PositiveIntegerField(default=0, help_text="Images accepted within the rate window.")
    reading = models.JSONField(default=dict, blank=True,
                               help_text="Everything the policy was given, exactly: replayable.")
    target = models.PositiveIntegerField(default=0, help_text="The node count the policy decided on.")
    reason = models.CharField(max_length=255, help_text="Why the policy decided so.")
    action = models.CharField(max_length=255, blank=True, help_text="What was done: launched, retired, nothing.")
    dry_run = models.BooleanField(default=False, help_text="True when nothing was actually changed.")
    error = models.TextField(blank=True, help_text="The error of a failed pass, if any.")

    objects = ScalingEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["-created_at"], name="scalingevent_created_idx")]

    def __str__(self):
        return f"{self.created_at:%H:%M:%S} → {self.target} ({self.reason})"

    @property
    def fleet(self):
        return self.booting + self.running + self.draining

    def same_as(self, other):
        """Whether `other` (unsaved) saw and decided exactly what this row did: then it is folded in."""
        fields = ("backend", "dry_run", "reading", "target", "reason", "action", "error")
        return self.action == "nothing" and all(getattr(self, f) == getattr(other, f) for f in fields)

    def fold(self, at):
        """Count one more identical pass, seen `at`."""
        self.repeats += 1
        self.last_seen_at = at
        type(self).objects.filter(pk=self.pk).update(repeats=models.F("repeats") + 1, last_seen_at=at)


class Lease(models.Model):
    """One autoscaler at a time: the copy whose lease has not expired acts; others wait.

    Claimed with a conditional UPDATE (the row is free, expired or already ours), which works
    the same on SQLite and PostgreSQL."""

    name = models.CharField(max_length=50, unique=True, help_text="What the lease guards, e.g. autoscaler.")
    holder = models.CharField(max_length=200, blank=True, help_text="host:pid of the copy holding it.")
    expires_at = models.DateTimeField(default=timezone.now, help_text="When it is free unless renewed.")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name}: {self.holder or 'free'} until {self.expires_at:%H:%M:%S}"

    @classmethod
    def claim(cls, name, holder, now, seconds):
        """Take or renew the lease; returns None on success, or the lease another copy holds."""
        free = models.Q(holder=holder) | models.Q(holder="") | models.Q(expires_at__lt=now)
        until = now + timedelta(seconds=seconds)
        if cls.objects.filter(free, name=name).update(holder=holder, expires_at=until):
            return None
        try:
            with transaction.atomic():
                cls.objects.create(name=name, holder=holder, expires_at=until)
            return None
        except IntegrityError:  # it exists and another copy holds it
            return cls.objects.filter(name=name).first()

    @classmethod
    def release(cls, name, holder):
        cls.objects.filter(name=name, holder=holder).update(holder="", expires_at=timezone.now())
