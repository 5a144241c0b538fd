output "nats_url_secret_arn" {
  description = "Secret holding NATS_URL (nats://auction:<password>@nats.<zone>:4222)."
  value       = aws_secretsmanager_secret.nats_url.arn
}

output "node_addresses" {
  value = { for name, node in local.nodes : name => node.private_ip }
}

output "security_group_id" {
  value = aws_security_group.this.id
}

output "instance_ids" {
  value = { for name, node in aws_instance.node : name => node.id }
}
