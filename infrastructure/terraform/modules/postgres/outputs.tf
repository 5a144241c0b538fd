output "database_url_secret_arn" {
  description = "Secret holding DATABASE_URL (postgres://auction:<password>@<host>:5432/auction?sslmode=require)."
  value       = module.database_url.arn
}
