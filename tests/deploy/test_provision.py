"""deploy.provision on the suite's moto server: everything once, then no changes; teardown; the command."""
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from deploy.provision import provision, teardown
from imgsite.aws import client

EVERYTHING = {"iam": True, "launch_template": True, "asg": True}


def planned(name, ami):
    return [
        f"create private bucket {name}",
        f"create queue {name}-dlq",
        f"create queue {name}",
        f"create IAM role {name} for EC2",
        f"add policy imgsite-worker on IAM role {name}",
        f"create instance profile {name}",
        f"put IAM role {name} in instance profile {name}",
        f"create launch template {name} ({ami}, c7i.large)",
        f"create Auto Scaling group {name} (0..2 instances)",
        *tier_identities(name),
    ]


def tier_identities(name):
    """The web tier's and the autoscaler's roles, made after the template (the autoscaler's names it)."""
    return [change for tier in ("web", "autoscaler") for change in (
        f"create IAM role {name}-{tier} for EC2",
        f"add policy imgsite-{tier} on IAM role {name}-{tier}",
        f"create instance profile {name}-{tier}",
        f"put IAM role {name}-{tier} in instance profile {name}-{tier}",
    )]


def test_it_creates_everything_once_and_then_reports_no_changes(own_names, moto_ami):
    assert provision(dry_run=True, ami_id=moto_ami, **EVERYTHING) == planned(own_names, moto_ami)
    assert provision(ami_id=moto_ami, **EVERYTHING) == planned(own_names, moto_ami)

    assert provision(ami_id=moto_ami, **EVERYTHING) == []
    assert provision(dry_run=True, ami_id=moto_ami, **EVERYTHING) == []


def test_a_dry_run_changes_nothing(own_names, moto_ami):
    provision(dry_run=True, ami_id=moto_ami, **EVERYTHING)

    assert own_names not in {bucket["Name"] for bucket in client("s3").list_buckets()["Buckets"]}
    assert own_names not in {profile["InstanceProfileName"]
                             for profile in client("iam").list_instance_profiles()["InstanceProfiles"]}
    assert provision(ami_id=moto_ami, **EVERYTHING) == planned(own_names, moto_ami)


def test_the_default_run_is_still_bucket_and_queues_only(own_names):
    assert provision() == [f"create private bucket {own_names}", f"create queue {own_names}-dlq",
                           f"create queue {own_names}"]
    assert provision(iam=True) == [f"create IAM role {own_names} for EC2",
                                   f"add policy imgsite-worker on IAM role {own_names}",
                                   f"create instance profile {own_names}",
                                   f"put IAM role {own_names} in instance profile {own_names}",
                                   *tier_identities(own_names)]


def test_changed_settings_are_brought_up_to_date(own_names, moto_ami, settings):
    provision(ami_id=moto_ami, **EVERYTHING)
    settings.EC2_INSTANCE_TYPE = "c7i.xlarge"
    settings.AUTOSCALE_MAX_NODES = 5
    settings.SSM_PARAMETER_PREFIX = "/imgsite-staging"

    assert provision(ami_id=moto_ami, **EVERYTHING) == [
        f"set policy imgsite-worker on IAM role {own_names}",
        f"make a new default version of launch template {own_names} ({moto_ami}, c7i.xlarge)",
        f"update Auto Scaling group {own_names} (0..5 instances)",
    ]
    settings.AUTOSCALE_CLOUDWATCH_METRIC = True  # the autoscaler may now publish its metric
    assert provision(ami_id=moto_ami, **EVERYTHING) == [
        f"set policy imgsite-autoscaler on IAM role {own_names}-autoscaler"]
    assert provision(ami_id=moto_ami, **EVERYTHING) == []


def test_teardown_removes_what_provision_made(own_names, moto_ami):
    provision(ami_id=moto_ami, **EVERYTHING)

    assert teardown(dry_run=True, **EVERYTHING) == teardown(**EVERYTHING) == [
        f"delete instance profile {own_names}-autoscaler",
        f"delete IAM role {own_names}-autoscaler",
        f"delete instance profile {own_names}-web",
        f"delete IAM role {own_names}-web",
        f"delete Auto Scaling group {own_names} and terminate its instances",
        f"delete launch template {own_names}",
        f"delete instance profile {own_names}",
        f"delete IAM role {own_names}",
        f"delete queue {own_names}",
        f"delete queue {own_names}-dlq",
        f"delete bucket {own_names}",
    ]
    assert teardown(**EVERYTHING) == []


def test_teardown_keeps_a_bucket_that_holds_images(own_names):
    provision()
    client("s3").put_object(Bucket=own_names, Key="images/x/original.jpg", Body=b"...")

    changes = teardown()

    assert changes[-1] == f"keep bucket {own_names}: it still holds images (empty it yourself to delete it)"
    assert client("s3").head_object(Bucket=own_names, Key="images/x/original.jpg")


def test_the_command_prints_the_plan_and_then_no_changes(own_names, moto_ami, capsys):
    call_command("provision", "--dry-run", "--with-iam", "--with-asg", "--ami-id", moto_ami)
    plan = capsys.readouterr().out.splitlines()
    assert plan == [f"would {change}" for change in planned(own_names, moto_ami)]

    call_command("provision", "--with-iam", "--with-asg", "--ami-id", moto_ami)
    call_command("provision", "--with-iam", "--with-asg", "--ami-id", moto_ami)
    assert capsys.readouterr().out.splitlines()[-1] == "no changes: everything is provisioned"

    call_command("provision", "--teardown", "--with-iam", "--with-asg")
    call_command("provision", "--teardown", "--with-iam", "--with-asg")
    assert capsys.readouterr().out.splitlines()[-1] == "no changes: nothing to remove"


def test_the_command_says_when_there_is_no_worker_image(own_names):
    with pytest.raises(CommandError, match="no worker AMI"):
        call_command("provision", "--with-launch-template")
