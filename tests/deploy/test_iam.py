"""The workers' role grants exactly what a worker uses, on exactly its own resources."""
from deploy.iam import ASSUME_ROLE_POLICY, POLICY_NAME, worker_policy
from deploy.provision import provision
from imgsite.aws import client


def grants(policy):
    return {(action, resource) for statement in policy["Statement"]
            for action in statement["Action"] for resource in statement["Resource"]}


def test_the_worker_policy_grants_exactly_what_a_worker_uses(settings):
    settings.IMAGE_BUCKET, settings.CLASSIFY_QUEUE, settings.AWS_REGION = "pics", "jobs", "eu-west-1"
    settings.SSM_PARAMETER_PREFIX = "/imgsite/prod"
    queue = "arn:aws:sqs:eu-west-1:111122223333:jobs"

    policy = worker_policy("aws", "111122223333")

    assert grants(policy) == {
        ("s3:GetObject", "arn:aws:s3:::pics/images/*"),
        ("s3:PutObject", "arn:aws:s3:::pics/images/*/thumbnail.jpg"),
        ("s3:ListBucket", "arn:aws:s3:::pics"),
        ("sqs:ReceiveMessage", queue),
        ("sqs:DeleteMessage", queue),
        ("sqs:ChangeMessageVisibility", queue),
        ("sqs:SendMessage", queue),
        ("sqs:GetQueueAttributes", queue),
        ("ssm:GetParametersByPath", "arn:aws:ssm:eu-west-1:111122223333:parameter/imgsite/prod"),
    }


def test_the_worker_policy_only_allows_and_names_no_wildcard_action_or_other_resource(settings):
    policy = worker_policy("aws-cn", "111122223333")

    for statement in policy["Statement"]:
        assert set(statement) == {"Sid", "Effect", "Action", "Resource"}  # no NotAction, NotResource
        assert statement["Effect"] == "Allow"
        assert not any("*" in action for action in statement["Action"])
        assert all(resource.startswith("arn:aws-cn:") for resource in statement["Resource"])
    resources = {resource for _, resource in grants(policy)}
    assert not any(settings.DEAD_LETTER_QUEUE in resource for resource in resources)


def test_the_role_on_moto_is_only_for_ec2_and_has_only_this_policy(own_names):
    provision(iam=True)
    iam = client("iam")

    role = iam.get_role(RoleName=own_names)["Role"]
    assert role["AssumeRolePolicyDocument"] == ASSUME_ROLE_POLICY
    assert iam.list_role_policies(RoleName=own_names)["PolicyNames"] == [POLICY_NAME]
    assert iam.list_attached_role_policies(RoleName=own_names)["AttachedPolicies"] == []
    document = iam.get_role_policy(RoleName=own_names, PolicyName=POLICY_NAME)["PolicyDocument"]
    assert document == worker_policy("aws", "123456789012")
    profile = iam.get_instance_profile(InstanceProfileName=own_names)["InstanceProfile"]
    assert [attached["RoleName"] for attached in profile["Roles"]] == [own_names]
