# What each service is given, in one place. `make infra-check` reads these locals and proves
# them against the binaries (every name is a real option of that binary's --help, or on the
# checker's list of settings waiting for an issue), against the load balancer (ports, health
# path, idle timeout) and against infrastructure/compose/compose.yaml (the same settings).

locals {
  # The port each service listens on (its LISTEN_ADDR), its container port and target port.
  ports = {
    "api-gateway"       = 8080
    "broadcast-service" = 8081
    "archival-worker"   = 8082
  }

  # Liveness, served by every service (shared::health); the container and ALB health checks.
  health_path = "/health"

  # Plain settings, written into the task definitions. Nothing secret belongs here.
  environment = {
    "api-gateway" = {
      LISTEN_ADDR        = "0.0.0.0:8080"
      LOG_FORMAT         = "json"
      RUST_LOG           = "info"
      SUBJECT_PREFIX     = "auction"
      ARCHIVE_STREAM     = "AUCTION_ARCHIVE"
      JETSTREAM_REPLICAS = "3"
      # Only the ALB reaches the gateways (their security group), from the VPC's private
      # addresses; the per-address limits count the client it appends to X-Forwarded-For.
      TRUSTED_PROXIES = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"
      # REDIS_URL is ElastiCache's configuration endpoint: one seed of the cluster.
      REDIS_CLUSTER = "true"
      # The web app (/app/) opens its WebSocket on its own origin; the ALB routes /ws* to the
      # broadcast service.
      WEB_APP_WS_URL = "/ws"
    }
    "broadcast-service" = {
      LISTEN_ADDR = "0.0.0.0:8081"
      # The gateways' public keys through the public name (the ALB routes it to a gateway and
      # the certificate is for that name): sockets that sign in verify here.
      JWKS_URL         = "https://${var.public_host_name}/.well-known/jwks.json"
      LOG_FORMAT       = "json"
      RUST_LOG         = "info"
      SUBJECT_PREFIX   = "auction"
      PING_INTERVAL_MS = "20000"
      IDLE_TIMEOUT_MS  = "60000"
      # Behind the ALB every peer is the load balancer; the per-address limit counts the
      # client the ALB appends to X-Forwarded-For.
      TRUSTED_PROXIES = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"
      REDIS_CLUSTER   = "true"
    }
    "archival-worker" = {
      LISTEN_ADDR        = "0.0.0.0:8082"
      LOG_FORMAT         = "json"
      RUST_LOG           = "info"
      SUBJECT_PREFIX     = "auction"
      ARCHIVE_STREAM     = "AUCTION_ARCHIVE"
      JETSTREAM_REPLICAS = "3"
      # The gateway's Redis, read only, for notifications.
      REDIS_CLUSTER = "true"
    }
  }

  # Secrets: ECS reads each from Secrets Manager into the container's environment at start;
  # only the secret's ARN is in the task definition.
  secrets = {
    "api-gateway" = {
      REDIS_URL       = var.redis_url_secret_arn
      NATS_URL        = var.nats_url_secret_arn
      DATABASE_URL    = var.database_url_secret_arn
      JWT_SIGNING_KEY = module.signing_key.arn
    }
    "broadcast-service" = {
      REDIS_URL = var.redis_url_secret_arn
      NATS_URL  = var.nats_url_secret_arn
    }
    "archival-worker" = {
      REDIS_URL    = var.redis_url_secret_arn
      NATS_URL     = var.nats_url_secret_arn
      DATABASE_URL = var.database_url_secret_arn
    }
  }
}
