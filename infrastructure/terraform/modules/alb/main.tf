# The public entry: an ALB over the three public subnets, HTTPS only (HTTP redirects), a WAF in
# front. `/ws*` (the WebSocket endpoints `/ws` and `/ws/items/{id}`) goes to the broadcast
# service, everything else to the gateway. The idle timeout is above the broadcast service's
# ping interval (20 s) and its own idle timeout (60 s), so a watched socket is never cut by the
# load balancer: the service decides when a socket is idle and closes it with 1001.

# In: HTTPS from anywhere, and HTTP, whose listener only redirects to HTTPS, so clients typing
# the bare host name arrive. Out: the service tasks' ports, in the VPC.
module "security_group" {
  source      = "../security_group"
  name_prefix = "${var.name}-alb-"
  description = "Public HTTPS to the load balancer"
  vpc_id      = var.vpc_id
  rules = merge({
    https = { direction = "ingress", port = 443, cidr_ipv4 = "0.0.0.0/0", description = "HTTPS from anywhere (the public API and WebSockets)" }
    http  = { direction = "ingress", port = 80, cidr_ipv4 = "0.0.0.0/0", description = "HTTP, only to redirect to HTTPS" }
    }, {
    for name, target in local.target_groups : name => { direction = "egress", port = target.port, cidr_ipv4 = var.vpc_cidr_block, description = "To the service tasks" }
  })
}

resource "aws_lb" "this" {
  name                       = var.name
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = var.public_subnet_ids
  security_groups            = [module.security_group.id]
  idle_timeout               = 90
  drop_invalid_header_fields = true
  enable_deletion_protection = true
  desync_mitigation_mode     = "defensive"

  access_logs {
    bucket  = aws_s3_bucket.access_logs.id
    prefix  = "alb"
    enabled = true
  }

  depends_on = [aws_s3_bucket_policy.access_logs]
}

locals {
  # The services behind the load balancer, by name (the services module's keys).
  target_groups = {
    # Health on /health (liveness). Not /ready: ECS replaces tasks the ALB finds unhealthy, and
    # /ready is 503 while NATS is down, when the gateways still accept bids.
    "api-gateway" = {
      name_prefix          = "gw-"
      port                 = 8080
      deregistration_delay = 30
      algorithm            = "round_robin"
    }
    # Long-lived sockets, so least outstanding requests spreads new ones to the least busy
    # instance; a draining instance gets 120 s for its viewers to reconnect elsewhere.
    "broadcast-service" = {
      name_prefix          = "bc-"
      port                 = 8081
      deregistration_delay = 120
      algorithm            = "least_outstanding_requests"
    }
  }
}

resource "aws_lb_target_group" "service" {
  #checkov:skip=CKV_AWS_378:TLS ends at the ALB; the hop to the tasks stays inside the VPC's private subnets (the broadcast service writes frames straight to raw sockets, so it speaks plain ws://).
  for_each                      = local.target_groups
  name_prefix                   = each.value.name_prefix
  port                          = each.value.port
  protocol                      = "HTTP"
  target_type                   = "ip"
  vpc_id                        = var.vpc_id
  deregistration_delay          = each.value.deregistration_delay
  load_balancing_algorithm_type = each.value.algorithm

  health_check {
    path                = "/health"
    port                = tostring(each.value.port)
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"
    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.service["api-gateway"].arn
  }
}

resource "aws_lb_listener_rule" "websockets" {
  listener_arn = aws_lb_listener.https.arn
  priority     = 10

  condition {
    path_pattern {
      values = ["/ws*"]
    }
  }

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.service["broadcast-service"].arn
  }
}

data "aws_elb_service_account" "this" {}

resource "aws_s3_bucket" "access_logs" {
  bucket_prefix = "${var.name}-alb-logs-"
  force_destroy = false
  #checkov:skip=CKV_AWS_144:Access logs are kept for investigation in this region; a replica elsewhere doubles cost for no recovery need.
  #checkov:skip=CKV_AWS_18:This is the log bucket; logging its own access would need another bucket with the same question.
  #checkov:skip=CKV2_AWS_62:Nothing reacts to new log objects; notifications would have no consumer.
  #checkov:skip=CKV_AWS_145:ALB access logs support only SSE-S3 (AES256), not SSE-KMS.
}

resource "aws_s3_bucket_public_access_block" "access_logs" {
  bucket                  = aws_s3_bucket.access_logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  rule {
    id     = "expire"
    status = "Enabled"
    filter {}
    expiration {
      days = var.access_log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 7
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "aws_iam_policy_document" "access_logs" {
  statement {
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.access_logs.arn}/alb/*"]
    principals {
      type        = "AWS"
      identifiers = [data.aws_elb_service_account.this.arn]
    }
  }
  statement {
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.access_logs.arn, "${aws_s3_bucket.access_logs.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  policy = data.aws_iam_policy_document.access_logs.json
}

# Known-bad inputs (Log4Shell and the like) and a per-IP request ceiling in front of the API.
resource "aws_wafv2_web_acl" "this" {
  name  = var.name
  scope = "REGIONAL"

  default_action {
    allow {}
  }

  rule {
    name     = "known-bad-inputs"
    priority = 1
    override_action {
      none {}
    }
    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "known-bad-inputs"
      sampled_requests_enabled   = true
    }
  }

  # Anonymising proxies and hosting providers: counted, not blocked (blocking VPN users is a
  # product decision); the metric shows how much bidding comes from them.
  rule {
    name     = "anonymous-ip"
    priority = 3
    override_action {
      count {}
    }
    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesAnonymousIpList"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "anonymous-ip"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "per-ip-rate"
    priority = 2
    action {
      block {}
    }
    statement {
      rate_based_statement {
        limit              = var.waf_requests_per_ip_per_5_min
        aggregate_key_type = "IP"
      }
    }
    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "per-ip-rate"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = var.name
    sampled_requests_enabled   = true
  }
  #checkov:skip=CKV2_AWS_31:WAF request logging (Kinesis Firehose or a log group per ACL) is left to the operator; the ALB access logs already record every request.
}

resource "aws_wafv2_web_acl_association" "this" {
  resource_arn = aws_lb.this.arn
  web_acl_arn  = aws_wafv2_web_acl.this.arn
}
