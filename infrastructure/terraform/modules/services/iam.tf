# Least privilege, per service. The execution role (used by ECS to start the task) may pull its
# own image, write its own log group and read only its own secrets. The task role (the running
# code) has no permissions, except the broadcast service's metrics collector writing its
# metrics log group.

module "execution_role" {
  source          = "../service_role"
  for_each        = local.ports
  name_prefix     = "${substr(var.name, 0, 16)}-${substr(each.key, 0, 8)}-exec-"
  service         = "ecs-tasks.amazonaws.com"
  inline_policies = { execution = data.aws_iam_policy_document.execution[each.key].json }
}

data "aws_iam_policy_document" "execution" {
  for_each = local.ports

  # Authorization tokens are account-wide: this action has no resource-level form.
  statement {
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }
  statement {
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [var.repositories[each.key].arn]
  }
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.service[each.key].arn}:*"]
  }
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = values(local.secrets[each.key])
  }
  statement {
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

module "task_role" {
  source          = "../service_role"
  for_each        = local.ports
  name_prefix     = "${substr(var.name, 0, 16)}-${substr(each.key, 0, 8)}-task-"
  service         = "ecs-tasks.amazonaws.com"
  inline_policies = each.key == "broadcast-service" ? { collector = data.aws_iam_policy_document.collector.json } : {}
}

data "aws_iam_policy_document" "collector" {
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.metrics.arn}:*"]
  }
  statement {
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}
