output "database_url_secret_arn" {
  description = "Secret holding DATABASE_URL (postgres://auction:<password>@<host>:5432/auction?sslmode=require)."
  value       = aws_secretsmanager_secret.database_url.arn
}

output "address" {
  value = aws_db_instance.this.address
}

output "security_group_id" {
  value = aws_security_group.this.id
}
