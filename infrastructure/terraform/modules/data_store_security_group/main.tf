# The security group of a data store (Redis, PostgreSQL, NATS): its one client port open to the
# services' security groups and to nothing else. The store attaches it and adds any rules of its
# own (NATS: routes between the nodes, HTTPS out).

resource "aws_security_group" "this" {
  #checkov:skip=CKV2_AWS_5:Attached by the calling module (its store's security groups take this module's id output); checkov's graph does not follow module outputs.
  name_prefix = "${var.name}-${var.store}-"
  description = var.description
  vpc_id      = var.vpc_id
  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "clients" {
  for_each                     = var.clients
  security_group_id            = aws_security_group.this.id
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = var.port
  to_port                      = var.port
  description                  = var.client_rule_description
}
