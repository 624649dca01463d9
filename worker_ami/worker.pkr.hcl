# The imgsite worker machine image: Amazon Linux 2023, Python 3.11, the worker's venv,
# the model artifacts, and the imgsite-worker systemd unit. See worker_ami/README.md.
#
# Valid for two Packers, so there is no `packer { required_plugins ... }` block:
# - Packer 1.6.6 (Debian's `packer` package), whose amazon-ebs builder is built in and which
#   rejects required_plugins;
# - current Packer, once the amazon plugin is installed:
#   packer plugins install github.com/hashicorp/amazon

variable "region" {
  type        = string
  default     = "us-east-1"
  description = "Where the image is built and registered (the workers' region)."
}

variable "instance_type" {
  type        = string
  default     = "c7i.large"
  description = "The build instance. The image runs on any x86_64 instance type."
}

variable "resnet50_weights_url" {
  type        = string
  default     = ""
  description = "https://, s3:// or file:// URL of the ResNet50 ImageNet weights (.h5), placed for CLASSIFIER_MODEL=resnet50. Empty: EfficientNet-Lite0 only."
}

variable "resnet50_weights_sha256" {
  type        = string
  default     = ""
  description = "The weights file's SHA-256, checked at bake time when given."
}

variable "iam_instance_profile" {
  type        = string
  default     = ""
  description = "An instance profile for the build instance, e.g. to read an s3:// weights URL. Empty: none."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "The subnet for the build instance (it needs outbound internet). Empty: the default VPC."
}

variable "volume_size" {
  type        = number
  default     = 16
  description = "Root volume size in GiB (TensorFlow alone takes about 2 GiB)."
}

variable "ami_name_prefix" {
  type        = string
  default     = "imgsite-worker-"
  description = "`manage.py provision --with-launch-template` picks this account's newest image with this prefix."
}

locals {
  # What the worker needs from the repository; provision.sh installs the same list.
  app_paths = ["manage.py", "imgsite", "accounts", "classifier", "scaling", "deploy", "templates", "static", "requirements", "worker_ami"]
  stamp     = formatdate("YYYYMMDD-hhmmss", timestamp())
}

source "amazon-ebs" "worker" {
  region               = var.region
  instance_type        = var.instance_type
  subnet_id            = var.subnet_id
  iam_instance_profile = var.iam_instance_profile
  ssh_username         = "ec2-user"
  ami_name             = "${var.ami_name_prefix}${local.stamp}"
  ami_description      = "imgsite worker: Celery + TensorFlow on Amazon Linux 2023 (worker_ami/worker.pkr.hcl)"

  # The newest Amazon Linux 2023 standard image, found by name: never a hard-coded AMI id.
  source_ami_filter {
    filters = {
      name                = "al2023-ami-2023.*-x86_64"
      architecture        = "x86_64"
      root-device-type    = "ebs"
      virtualization-type = "hvm"
    }
    owners      = ["amazon"]
    most_recent = true
  }

  launch_block_device_mappings {
    device_name = "/dev/xvda"
    volume_size = var.volume_size
    volume_type = "gp3"
    # gp3's baseline, stated: Packer 1.6.6 refuses gp3 without a throughput.
    throughput            = 125
    iops                  = 3000
    delete_on_termination = true
  }

  tags = {
    Name               = "imgsite-worker"
    "imgsite:recipe"   = "worker_ami/worker.pkr.hcl"
    "imgsite:built-at" = local.stamp
  }
  run_tags = {
    Name = "packer: imgsite-worker image build"
  }
}

build {
  sources = ["source.amazon-ebs.worker"]

  provisioner "shell" {
    inline = ["mkdir -p /tmp/imgsite"]
  }

  provisioner "file" {
    sources     = [for name in local.app_paths : "${path.root}/../${name}"]
    destination = "/tmp/imgsite/"
  }

  provisioner "shell" {
    script          = "${path.root}/provision.sh"
    execute_command = "sudo env {{ .Vars }} bash '{{ .Path }}'"
    environment_vars = [
      "APP_SOURCE=/tmp/imgsite",
      "RESNET50_WEIGHTS_URL=${var.resnet50_weights_url}",
      "RESNET50_WEIGHTS_SHA256=${var.resnet50_weights_sha256}",
    ]
  }
}
