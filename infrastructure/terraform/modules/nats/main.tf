# A three-node NATS cluster with JetStream (streams at R3), one EC2 instance per zone.
#
# Why EC2 with EBS rather than Fargate: JetStream's file store wants a local block device with
# working fsync (NATS advises against NFS, hence against EFS), and each node needs a stable
# identity (name, address, its own data) that survives a restart. Fargate's EBS volumes belong
# to one task and go when it stops; here each node keeps a gp3 volume of its own (a separate
# resource, so replacing the instance keeps the data), a fixed private address, and EC2
# automatic recovery moves it to healthy hardware with both. Losing one node loses no
# acknowledged message: R3 streams keep a quorum on the other two.
#
# The nodes run the official nats image under Docker; the services' password is read from
# Secrets Manager at boot (never in user data). NATS_URL lists the three nodes' fixed private
# addresses, so the client reaches whichever is up; `nats.<zone>` resolves to all three too.

data "aws_ssm_parameter" "al2023_arm64" {
  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
}

data "aws_region" "current" {}

resource "random_password" "nats" {
  length  = 40
  special = false
}

# No rotation Lambda: rotating it means restarting the nodes and the services together
# (docs/DEPLOY.md), which a Lambda cannot do.
module "nats_password" {
  source      = "../secret"
  name_prefix = "${var.name}/nats-password-"
  description = "Password of the services' NATS user (read by the NATS nodes at boot)"
  value       = random_password.nats.result
  kms_key_arn = var.kms_key_arn
}

# No rotation Lambda: it changes together with nats_password (see there).
module "nats_url" {
  source      = "../secret"
  name_prefix = "${var.name}/nats-url-"
  description = "NATS_URL of every service (user and password, the three nodes comma-separated)"
  value = join(",", [
    for name, node in local.nodes : "nats://auction:${random_password.nats.result}@${node.private_ip}:4222"
  ])
  kms_key_arn = var.kms_key_arn
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/${var.name}/nats"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

module "node_role" {
  source      = "../service_role"
  name_prefix = "${var.name}-nats-"
  service     = "ec2.amazonaws.com"
  # Shell access through Session Manager instead of SSH keys and an open port 22.
  managed_policy_arns = ["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"]
  inline_policies     = { node = data.aws_iam_policy_document.node.json }
}

# Its own password secret and its own log group, nothing else.
data "aws_iam_policy_document" "node" {
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [module.nats_password.arn]
  }
  statement {
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }
}

resource "aws_iam_instance_profile" "node" {
  name_prefix = "${var.name}-nats-"
  role        = module.node_role.name
}

locals {
  nodes = {
    for i, subnet in var.subnets : "nats-${i + 1}" => {
      subnet_id         = subnet.id
      availability_zone = subnet.availability_zone
      # The 11th address of the node's subnet: fixed, so routes and DNS never change.
      private_ip = cidrhost(subnet.cidr_block, 10)
    }
  }
}

resource "aws_ebs_volume" "data" {
  for_each          = local.nodes
  availability_zone = each.value.availability_zone
  size              = var.volume_size_gb
  type              = "gp3"
  encrypted         = true
  kms_key_id        = var.kms_key_arn
  tags              = { Name = "${var.name}-${each.key}-jetstream" }
}

resource "aws_instance" "node" {
  for_each               = local.nodes
  ami                    = data.aws_ssm_parameter.al2023_arm64.value
  instance_type          = var.instance_type
  subnet_id              = each.value.subnet_id
  private_ip             = each.value.private_ip
  vpc_security_group_ids = [var.security_group_id]
  iam_instance_profile   = aws_iam_instance_profile.node.name
  ebs_optimized          = true
  monitoring             = true

  metadata_options {
    http_tokens                 = "required"
    http_endpoint               = "enabled"
    http_put_response_hop_limit = 2
  }

  maintenance_options {
    auto_recovery = "default"
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = 20
    encrypted   = true
    kms_key_id  = var.kms_key_arn
  }

  user_data_replace_on_change = false
  user_data = templatefile("${path.module}/user_data.sh.tftpl", {
    server_name     = each.key
    nats_image      = var.nats_image
    routes          = join(",", [for name, node in local.nodes : "nats-route://${node.private_ip}:6222"])
    password_secret = module.nats_password.arn
    region          = data.aws_region.current.region
    log_group       = aws_cloudwatch_log_group.this.name
    max_file_store  = "${floor(var.volume_size_gb * 0.8)}G"
  })

  tags = { Name = "${var.name}-${each.key}" }

  lifecycle {
    # A new AMI must not replace every node at once; roll them one by one (docs/DEPLOY.md).
    ignore_changes = [ami]
  }
}

resource "aws_volume_attachment" "data" {
  for_each    = local.nodes
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.data[each.key].id
  instance_id = aws_instance.node[each.key].id
}

# Recover a node whose host fails (same instance id, address and volumes).
resource "aws_cloudwatch_metric_alarm" "recover" {
  for_each            = local.nodes
  alarm_name          = "${var.name}-${each.key}-recover"
  namespace           = "AWS/EC2"
  metric_name         = "StatusCheckFailed_System"
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 2
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  dimensions          = { InstanceId = aws_instance.node[each.key].id }
  alarm_actions       = ["arn:aws:automate:${data.aws_region.current.region}:ec2:recover"]
}

resource "aws_route53_zone" "internal" {
  name    = var.dns_zone_name
  comment = "Private names of ${var.name}"
  vpc {
    vpc_id = var.vpc_id
  }
  #checkov:skip=CKV2_AWS_38:DNSSEC signing applies to public zones; this zone is private to the VPC.
  #checkov:skip=CKV2_AWS_39:Query logging of a private zone holding three A records adds cost and no insight; VPC flow logs cover the traffic.
}

resource "aws_route53_record" "node" {
  #checkov:skip=CKV2_AWS_23:Points at the node's fixed private address (aws_instance.node private_ip), which checkov cannot link.
  for_each = local.nodes
  zone_id  = aws_route53_zone.internal.zone_id
  name     = "${each.key}.${var.dns_zone_name}"
  type     = "A"
  ttl      = 60
  records  = [each.value.private_ip]
}

resource "aws_route53_record" "cluster" {
  #checkov:skip=CKV2_AWS_23:Points at the three nodes' fixed private addresses (aws_instance.node private_ip), which checkov cannot link.
  zone_id = aws_route53_zone.internal.zone_id
  name    = "nats.${var.dns_zone_name}"
  type    = "A"
  ttl     = 60
  records = [for node in local.nodes : node.private_ip]
}
