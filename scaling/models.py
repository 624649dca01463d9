"""What the autoscaler knows from the database: worker heartbeats and its own decisions."""
from datetime import timedelta

from django.db import models
from django.utils import timezone


class WorkerNodeQuerySet(models.QuerySet):
    def alive(self, now, stale_after):
        return self.filter(last_heartbeat__gte=now - timedelta(seconds=stale_after))

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


class ScalingEvent(models.Model):
    created_at = models.DateTimeField(default=timezone.now, help_text="When the autoscaler made this pass.")
    backend = models.CharField(max_length=10, help_text="The fleet backend: ec2, asg or local.")
    visible = models.PositiveIntegerField(default=0, help_text="Images waiting in visible messages.")
    in_flight = models.PositiveIntegerField(default=0, help_text="Images in messages being processed.")
    delayed = models.PositiveIntegerField(default=0, help_text="Images in delayed messages.")
    booting = models.PositiveIntegerField(default=0, help_text="Nodes launched but not yet running.")
    running = models.PositiveIntegerField(default=0, help_text="Nodes running (excluding draining ones).")
    draining = models.PositiveIntegerField(default=0, help_text="Nodes finishing their task before retiring.")
    busy = models.PositiveIntegerField(default=0, help_text="Nodes running a task.")
    seconds_per_image = models.FloatField(null=True, blank=True, help_text="Recent mean processing time.")
    target = models.PositiveIntegerField(default=0, help_text="The node count the policy decided on.")
    reason = models.CharField(max_length=255, help_text="Why the policy decided so.")
    action = models.CharField(max_length=255, blank=True, help_text="What was done: launched, retired, nothing.")
    dry_run = models.BooleanField(default=False, help_text="True when nothing was actually changed.")
    error = models.TextField(blank=True, help_text="The error of a failed pass, if any.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["-created_at"], name="scalingevent_created_idx")]

    def __str__(self):
        return f"{self.created_at:%H:%M:%S} → {self.target} ({self.reason})"
