output "database_url_secret_arn" {
  description = "Secret holding DATABASE_URL (postgres://auction:<password>@<host>:5432/auction?sslmode=verify-full&sslrootcert=<bundle>)."
  value       = module.database_url.arn
}
