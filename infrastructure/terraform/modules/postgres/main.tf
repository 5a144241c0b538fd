# RDS PostgreSQL for the archive and the read model (and, with issue 12, accounts): Multi-AZ,
# encrypted with the environment's key, TLS enforced by the parameter group, daily backups kept
# `backup_retention_days`, deletion protection, Performance Insights and enhanced monitoring.
# The services reach it through one secret, the whole DATABASE_URL, with `sslmode=verify-full`:
# the server's certificate must chain to RDS's CA (the bundle the images carry) and name the
# instance's endpoint.

resource "aws_db_subnet_group" "this" {
  name_prefix = "${var.store.name}-"
  subnet_ids  = var.store.subnet_ids
}

resource "aws_db_parameter_group" "this" {
  name_prefix = "${var.store.name}-"
  family      = "postgres${split(".", var.engine_version)[0]}"

  # Plain-text connections are refused: every client must use TLS.
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "500"
  }

  lifecycle {
    create_before_destroy = true
  }
}

# URL-safe, because it is placed inside DATABASE_URL.
resource "random_password" "master" {
  length  = 40
  special = false
}

# Enhanced monitoring's agent publishes the OS metrics with this role.
module "monitoring_role" {
  source              = "../service_role"
  name_prefix         = "${var.store.name}-rds-mon-"
  service             = "monitoring.rds.amazonaws.com"
  managed_policy_arns = ["arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"]
}

resource "aws_db_instance" "this" {
  identifier_prefix                     = "${var.store.name}-"
  engine                                = "postgres"
  engine_version                        = var.engine_version
  instance_class                        = var.instance_class
  allocated_storage                     = var.allocated_storage_gb
  max_allocated_storage                 = var.max_allocated_storage_gb
  storage_type                          = "gp3"
  storage_encrypted                     = true
  kms_key_id                            = var.store.kms_key_arn
  db_name                               = "auction"
  username                              = "auction"
  password                              = random_password.master.result
  port                                  = 5432
  multi_az                              = true
  db_subnet_group_name                  = aws_db_subnet_group.this.name
  vpc_security_group_ids                = [var.store.security_group_id]
  parameter_group_name                  = aws_db_parameter_group.this.name
  ca_cert_identifier                    = var.ca_cert_identifier
  publicly_accessible                   = false
  backup_retention_period               = var.backup_retention_days
  backup_window                         = "02:00-03:00"
  maintenance_window                    = "sun:05:30-sun:06:30"
  copy_tags_to_snapshot                 = true
  deletion_protection                   = true
  skip_final_snapshot                   = false
  final_snapshot_identifier             = "${var.store.name}-final"
  auto_minor_version_upgrade            = true
  iam_database_authentication_enabled   = true
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = var.store.kms_key_arn
  performance_insights_retention_period = 7
  monitoring_interval                   = 30
  monitoring_role_arn                   = module.monitoring_role.arn
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  apply_immediately                     = false
}

# No rotation Lambda: the password lives in RDS and in this URL together; rotation is the
# documented change-password-then-update-secret step (docs/DEPLOY.md).
module "database_url" {
  source      = "../secret"
  name_prefix = "${var.store.name}/database-url-"
  description = "DATABASE_URL of the gateway and the archival worker (TLS, verify-full)"
  value       = "postgres://auction:${random_password.master.result}@${aws_db_instance.this.address}:5432/auction?sslmode=verify-full&sslrootcert=${var.ca_bundle_path}"
  kms_key_arn = var.store.kms_key_arn
}
