from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from deploy import provision as provisioning


class Command(BaseCommand):
    help = ("Create the S3 bucket, the SQS queue and its dead-letter queue from settings (idempotent); "
            "optionally each tier's IAM role, the workers' launch template and Auto Scaling group, and "
            "the workers' PostgreSQL role. --teardown removes what the same options create.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Print the plan; change nothing.")
        parser.add_argument("--teardown", action="store_true",
                            help="Remove instead of create (a bucket that still holds images is kept).")
        parser.add_argument("--with-iam", action="store_true",
                            help="Each tier's least-privilege IAM role and instance profile: the workers' "
                                 "(EC2_INSTANCE_PROFILE, else FLEET_NAME), FLEET_NAME-web and FLEET_NAME-autoscaler.")
        parser.add_argument("--with-launch-template", action="store_true",
                            help="The workers' launch template (named EC2_LAUNCH_TEMPLATE, else FLEET_NAME).")
        parser.add_argument("--ami-id", default=settings.EC2_AMI_ID or None,
                            help="The worker AMI (default: EC2_AMI_ID, else this account's newest imgsite-worker-*).")
        parser.add_argument("--with-asg", action="store_true",
                            help="The Auto Scaling group ASG_NAME, from the launch template (implies it).")
        parser.add_argument("--with-db-roles", action="store_true",
                            help="The workers' own PostgreSQL role, granted only the columns they use, and their "
                                 "DATABASE_URL in SSM (SSM_PARAMETER_PREFIX/DATABASE_URL). PostgreSQL only.")

    def handle(self, *args, dry_run, teardown, with_iam, with_launch_template, ami_id, with_asg, with_db_roles,
               **options):
        options = {"iam": with_iam, "launch_template": with_launch_template or with_asg, "asg": with_asg,
                   "db_roles": with_db_roles}
        try:
            if teardown:
                changes = provisioning.teardown(dry_run, **options)
            else:
                changes = provisioning.provision(dry_run, ami_id=ami_id, **options)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        prefix = "would " if dry_run else ""
        for change in changes:
            self.stdout.write(f"{prefix}{change}")
        if not changes:
            self.stdout.write("no changes: nothing to remove" if teardown else "no changes: everything is provisioned")

