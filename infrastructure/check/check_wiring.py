"""Proves the deployment's wiring offline: Terraform and compose against the real binaries.

    check_wiring.py --bin-dir DIR [--schema-dir DIR]

DIR holds the three binaries as infrastructure/docker/build.sh stages them. Checks:

* options: every variable given to a service (Terraform's settings.tf, compose.yaml) is an
  option in that binary's --help, RUST_LOG, or on the pending list (pending.py); a pending
  entry whose work has landed fails, so the list cannot go stale;
* secrets: nothing secret is a plain value: Terraform passes secrets only as Secrets Manager
  ARNs, compose only as ${…} from the uncommitted .env;
* TLS: Terraform's REDIS_URL is rediss:// and its DATABASE_URL verify-full against the RDS CA
  bundle at the path the image puts it, and the binaries document both;
* ports and health: LISTEN_ADDR, container and target ports, EXPOSE, the health checks of the
  Dockerfile, task definitions and target groups, nginx and Prometheus agree, on paths the
  services really serve;
* eviction: ElastiCache runs with a parameter group of this module that sets
  `maxmemory-policy noeviction` (the default groups evict keys with a TTL: the idempotency
  records) and `cluster-enabled yes`;
* timeouts: the ALB's and nginx's idle timeouts exceed the ping interval and idle timeout;
* routing: `/ws*` sends every broadcast WebSocket route, and no gateway route, to the
  broadcast service, on the ALB and in nginx;
* public ingress: only the ALB is open to anywhere, on 443 and on 80 (a redirect); the rules
  are data given to the security_group module, which checkov cannot expand;
* same settings: compose and Terraform give each service the same settings;
* metrics: the Grafana dashboard and the autoscaling metric use series the services export;
* schema: every AWS resource's arguments and blocks exist in the provider's schema.
"""

import argparse
import json
import pathlib
import re
import sys

import yaml

import aws_schema
import hcl_values
import pending
import service_options
import source_facts
from hcl_values import Expr

ROOT = pathlib.Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "infrastructure/terraform"
COMPOSE = ROOT / "infrastructure/compose"
SERVICES = ("api-gateway", "broadcast-service", "archival-worker")
# compose service names of each binary
COMPOSE_INSTANCES = {
    "api-gateway": ("gateway-1", "gateway-2"),
    "broadcast-service": ("broadcast-1", "broadcast-2"),
    "archival-worker": ("worker",),
}
# Variables whose values differ by design between compose and AWS: where the stores are, and
# the load balancer's address the broadcast service fetches the gateways' keys through.
ENDPOINTS = {"REDIS_URL", "NATS_URL", "DATABASE_URL"}
ADDRESSES = {"JWKS_URL"}
SECRET_NAME = re.compile(r"(PASSWORD|TOKEN|SECRET|_KEY$)")
CREDENTIAL_IN_URL = re.compile(r"://[^/@\s]*:[^/@\s$]+@")


def is_secret(name):
    return name in ENDPOINTS or bool(SECRET_NAME.search(name))


class Report:
    def __init__(self):
        self.failures = 0

    def check(self, title, problems):
        problems = list(problems)
        print(f"{'FAIL' if problems else 'ok  '}  {title}")
        for problem in problems:
            print(f"        - {problem}")
        self.failures += bool(problems)


def port_of(listen_addr):
    return int(str(listen_addr).rsplit(":", 1)[1])


def load_compose():
    compose = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    return compose["services"]


def compose_env(services, instance):
    return {k: str(v) for k, v in (services[instance].get("environment") or {}).items()}


def dockerfile_stages():
    """{stage: its instructions}, a stage built FROM another stage first holding that one's."""
    stages, current = {}, None
    text = (ROOT / "infrastructure/docker/Dockerfile").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "FROM":
            current = words[-1] if "AS" in words else words[1]
            stages[current] = list(stages.get(words[1], []))
        elif current:
            stages[current].append(line.strip())
    return stages


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", required=True, type=pathlib.Path)
    parser.add_argument("--schema-dir", type=pathlib.Path)
    args = parser.parse_args()
    report = Report()

    options = {s: service_options.read_options(str(args.bin_dir / s)) for s in SERVICES}
    facts = pending.Facts(
        options={s: {k: o.text for k, o in opts.items()} for s, opts in options.items()},
        read_repo_file=lambda rel: (ROOT / rel).read_text(),
    )
    modules = {p.name: hcl_values.load_dir(p) for p in (TERRAFORM / "modules").iterdir() if p.is_dir()}
    environment_dir = hcl_values.load_dir(TERRAFORM / "environments/example")
    settings = hcl_values.locals_of(modules["services"])
    tf_env, tf_secrets, tf_ports = settings["environment"], settings["secrets"], settings["ports"]
    compose = load_compose()
    routes = source_facts.routes(ROOT)

    # --- options -------------------------------------------------------------------------
    problems = []
    for service in SERVICES:
        real = set(options[service]) | service_options.ENV_NOT_FROM_CLAP
        allowed = real | pending.unknown_names_allowed(service)
        given = {"Terraform": set(tf_env[service]) | set(tf_secrets[service])}
        for instance in COMPOSE_INSTANCES[service]:
            given[f"compose {instance}"] = set(compose_env(compose, instance))
        for where, names in given.items():
            for name in sorted(names - allowed):
                problems.append(f"{where} gives {service} {name}, which is not one of its options")
    report.check("every variable given to a service is one of its options (or pending)", problems)

    problems = []
    for entry in pending.PENDING:
        if entry.landed(facts):
            problems.append(f"{entry.name} ({', '.join(entry.services)}): {entry.reason} -- this has landed: wire the real option and remove the entry from pending.py")
    report.check(f"the pending list ({len(pending.PENDING)} entries) is not stale", problems)
    for entry in pending.PENDING:
        print(f"        pending: {entry.name}: {entry.reason}")

    # --- secrets -------------------------------------------------------------------------
    problems = []
    # An ARN is a module's *_secret_arn output, a secret resource's arn or a secret module's.
    secret_modules = [name for name, body in hcl_values.modules_called(modules["services"]) if body["source"] == "../secret"]
    secret_arn = re.compile(rf"(secret_arn|aws_secretsmanager_secret\.\w+\.arn|module\.({'|'.join(map(re.escape, secret_modules)) or '$^'})\.arn)$")
    for service in SERVICES:
        for name, value in tf_env[service].items():
            if is_secret(name) or CREDENTIAL_IN_URL.search(str(value)):
                problems.append(f"Terraform gives {service} {name} as a plain environment value")
        for name, value in tf_secrets[service].items():
            if not (isinstance(value, Expr) and secret_arn.search(value)):
                problems.append(f"Terraform's secret {name} of {service} is not a Secrets Manager ARN: {value}")
    tasks_tf = (TERRAFORM / "modules/services/tasks.tf").read_text()
    if "for name, value in local.environment[each.key]" not in tasks_tf or "valueFrom = arn" not in tasks_tf:
        problems.append("tasks.tf no longer builds environment/secrets from settings.tf's locals")
    for instance, body in compose.items():
        for name, value in (body.get("environment") or {}).items():
            value = str(value)
            if (is_secret(name) or CREDENTIAL_IN_URL.search(value.replace("${", "$"))) and "${" not in value:
                problems.append(f"compose {instance}: {name} is a literal, not ${{…}} from .env")
        command = [str(word) for word in body.get("command") or []]
        for flag, word in zip(command, command[1:]):
            if flag in ("--requirepass", "--masterauth") and "${" not in word:
                problems.append(f"compose {instance}: {flag} is a literal, not ${{…}} from .env")
    example = (COMPOSE / ".env.example").read_text()
    compose_lines = (COMPOSE / "compose.yaml").read_text().splitlines()
    compose_code = "\n".join(line for line in compose_lines if not line.lstrip().startswith("#"))
    referenced = set(re.findall(r"\$\{([A-Z0-9_]+)", compose_code))
    listed = set(re.findall(r"^([A-Z0-9_]+)=", example, re.M))
    problems += [f".env.example lacks {name}, which compose.yaml reads" for name in sorted(referenced - listed)]
    if ".env" not in (COMPOSE / ".gitignore").read_text().split():
        problems.append("infrastructure/compose/.gitignore must ignore .env")
    report.check("no secret is a plain environment value (Terraform: ARNs; compose: ${…} from .env)", problems)

    # --- TLS to the stores ---------------------------------------------------------------
    problems = []
    module_values = {
        store: {name: body.get("value", "") for name, body in hcl_values.modules_called(modules[store])}
        for store in ("redis", "postgres")
    }
    redis_url = str(module_values["redis"].get("redis_url", ""))
    if not redis_url.startswith("rediss://"):
        problems.append(f"modules/redis gives REDIS_URL {redis_url!r}, not rediss:// (transit encryption is required)")
    database_url = str(module_values["postgres"].get("database_url", ""))
    if "sslmode=verify-full" not in database_url or "sslrootcert=${var.ca_bundle_path}" not in database_url:
        problems.append("modules/postgres's DATABASE_URL must carry sslmode=verify-full&sslrootcert=${var.ca_bundle_path}")
    variables = {name: body for parsed in modules["postgres"].values() for entry in parsed.get("variable", []) for name, body in entry.items()}
    bundle = variables.get("ca_bundle_path", {}).get("default")
    downloads = re.findall(r"-o (\S+rds\S+\.pem)", " ".join(dockerfile_stages().get("runtime", [])))
    if not bundle or bundle not in downloads:
        problems.append(f"modules/postgres ca_bundle_path {bundle!r} is not where the Dockerfile's runtime stage puts the RDS bundle ({downloads})")
    for service in ("api-gateway", "archival-worker"):
        if "verify-full" not in options[service]["DATABASE_URL"].text:
            problems.append(f"{service} --help does not document sslmode=verify-full for DATABASE_URL")
    for service in ("api-gateway", "broadcast-service"):
        if "rediss://" not in options[service]["REDIS_URL"].text or "REDIS_CA_FILE" not in options[service]:
            problems.append(f"{service} has no rediss:// REDIS_URL or REDIS_CA_FILE option")
    report.check("Redis is rediss://, PostgreSQL verify-full against the RDS bundle the images carry", problems)

    # --- Redis never evicts ---------------------------------------------------------------
    problems = []
    redis_resources = {(rtype, name): body for rtype, name, body, _ in hcl_values.resources(modules["redis"])}
    groups = {name: body for (rtype, name), body in redis_resources.items() if rtype == "aws_elasticache_parameter_group"}
    replication = [body for (rtype, _), body in redis_resources.items() if rtype == "aws_elasticache_replication_group"]
    if not replication:
        problems.append("modules/redis has no aws_elasticache_replication_group")
    for body in replication:
        used = re.fullmatch(r"aws_elasticache_parameter_group\.(\w+)\.name", str(body.get("parameter_group_name", "")))
        if not (isinstance(body.get("parameter_group_name"), Expr) and used and used.group(1) in groups):
            problems.append(f"the replication group's parameter_group_name {body.get('parameter_group_name')!r} is not this module's parameter group (a default group evicts keys with a TTL)")
            continue
        parameters = {p.get("name"): p.get("value") for p in groups[used.group(1)].get("parameter", [])}
        for name, wanted in (("maxmemory-policy", "noeviction"), ("cluster-enabled", "yes")):
            if parameters.get(name) != wanted:
                problems.append(f"parameter group {used.group(1)} sets {name} = {parameters.get(name)!r}, not {wanted!r}")
    report.check("ElastiCache never evicts a key (its parameter group: maxmemory-policy noeviction)", problems)

    # --- ports and health ----------------------------------------------------------------
    problems = []
    served = set(routes["shared"])
    health = settings["health_path"]
    if health not in served:
        problems.append(f"settings.tf health_path {health} is not a route of shared::health")
    stages = dockerfile_stages()
    for service in SERVICES:
        port = tf_ports[service]
        default_port = port_of(options[service]["LISTEN_ADDR"].default)
        if port != default_port:
            problems.append(f"{service}: Terraform port {port}, but the binary's default LISTEN_ADDR port is {default_port}")
        if port_of(tf_env[service]["LISTEN_ADDR"]) != port:
            problems.append(f"{service}: Terraform LISTEN_ADDR does not listen on {port}")
        for instance in COMPOSE_INSTANCES[service]:
            if port_of(compose_env(compose, instance)["LISTEN_ADDR"]) != port:
                problems.append(f"{service}: compose {instance} LISTEN_ADDR does not listen on {port}")
        stage = " ".join(stages.get(service, []))
        if f"EXPOSE {port}" not in stage:
            problems.append(f"Dockerfile stage {service} does not EXPOSE {port}")
        # The probe names the port, or takes it from the LISTEN_ADDR the stage sets.
        probe = re.search(r"http://127\.0\.0\.1:(\d+|\$\{LISTEN_ADDR##\*:\})(/[\w/]*)", stage)
        listen = re.findall(r"ENV LISTEN_ADDR=(\S+)", stage)
        probed = probe and (port_of(listen[-1]) if probe.group(1).startswith("$") and listen else probe.group(1))
        if not probe or str(probed) != str(port) or probe.group(2) not in served:
            problems.append(f"Dockerfile stage {service}: HEALTHCHECK must probe 127.0.0.1:{port} on a served path")
        if f"/out/{service} /usr/local/bin/{service}" not in stage or f'ENTRYPOINT ["/usr/local/bin/{service}"]' not in stage:
            problems.append(f"Dockerfile stage {service}: must copy /out/{service} and exec it as PID 1 (exec-form ENTRYPOINT)")
    if not any("infrastructure/docker/build.sh" in line for line in stages.get("builder", [])):
        problems.append("the Dockerfile's builder stage must RUN infrastructure/docker/build.sh (what CI runs)")
    if "local.health_path" not in tasks_tf:
        problems.append("tasks.tf's container health check no longer uses settings.tf's health_path")
    alb = dict(((r[0], r[1]), r[2]) for r in hcl_values.resources(modules["alb"]))
    # One target group per entry of the ALB's target_groups local, its port and health-check
    # port that entry's port.
    alb_targets = hcl_values.locals_of(modules["alb"])["target_groups"]
    if sorted(alb_targets) != ["api-gateway", "broadcast-service"]:
        problems.append(f"the ALB's target groups are {sorted(alb_targets)}, not the gateway and the broadcast service")
    body = alb[("aws_lb_target_group", "service")]
    check = hcl_values.block(body, "health_check")
    if body.get("for_each") != "local.target_groups" or body["port"] != "each.value.port" or check.get("port") != "tostring(each.value.port)":
        problems.append("aws_lb_target_group.service must be one per local.target_groups entry, on that entry's port (target and health check)")
    for service, target in alb_targets.items():
        if target["port"] != tf_ports.get(service):
            problems.append(f"target group {service}: port {target['port']} is not {service}'s {tf_ports.get(service)}")
    if check.get("path") != health:
        problems.append(f"target groups: health path {check.get('path')} is not {health}")
    # The ALB's egress: one rule per local.target_groups entry, on that entry's port, and no
    # other; the security_group module opens each egress rule's port (from_port and to_port).
    alb_group = dict(hcl_values.modules_called(modules["alb"])).get("security_group", {})
    alb_rules = alb_group.get("rules", "")
    per_target = re.search(r'\{for (\w+), (\w+) in local\.target_groups : \1 => \{direction = "egress", port = \2\.port,', alb_rules)
    shared_egress = dict(((r[0], r[1]), r[2]) for r in hcl_values.resources(modules["security_group"]))[("aws_vpc_security_group_egress_rule", "this")]
    opens_rule_port = shared_egress.get("from_port") == shared_egress.get("to_port") == "each.value.port"
    egress_only = 'rule.direction == "egress"' in shared_egress.get("for_each", "")
    if alb_group.get("source") != "../security_group" or not per_target or alb_rules.count('direction = "egress"') != 1 or not (opens_rule_port and egress_only):
        problems.append("the ALB's egress rules must open exactly the target groups' ports (one security_group rule per local.target_groups entry)")
    nginx = (COMPOSE / "nginx/nginx.conf").read_text()
    prometheus = yaml.safe_load((COMPOSE / "prometheus/prometheus.yml").read_text())
    scraped = {t for job in prometheus["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    for job in prometheus["scrape_configs"]:
        if job.get("metrics_path", "/metrics") not in served:
            problems.append(f"prometheus job {job['job_name']} scrapes a path no service serves")
    for service, instances in COMPOSE_INSTANCES.items():
        for instance in instances:
            target = f"{instance}:{tf_ports[service]}"
            if target not in scraped:
                problems.append(f"prometheus does not scrape {target}")
            if service != "archival-worker" and f"server {target}" not in nginx:
                problems.append(f"nginx has no upstream server {target}")
    report.check("ports and health-check paths match the services", problems)

    # --- timeouts ------------------------------------------------------------------------
    problems = []
    lb = alb[("aws_lb", "this")]
    broadcast_env = tf_env["broadcast-service"]
    for name in ("PING_INTERVAL_MS", "IDLE_TIMEOUT_MS"):
        value = int(broadcast_env.get(name, options["broadcast-service"][name].default))
        if lb["idle_timeout"] * 1000 <= value:
            problems.append(f"ALB idle_timeout {lb['idle_timeout']} s does not exceed {name} {value} ms")
        read_timeout = re.search(r"location /ws \{[^}]*proxy_read_timeout (\d+)s", nginx)
        if not read_timeout or int(read_timeout.group(1)) * 1000 <= value:
            problems.append(f"nginx proxy_read_timeout for /ws does not exceed {name} {value} ms")
    report.check(f"idle timeouts (ALB {lb['idle_timeout']} s) exceed the WebSocket ping interval and idle timeout", problems)

    # --- routing -------------------------------------------------------------------------
    problems = []
    rule = alb[("aws_lb_listener_rule", "websockets")]
    patterns = hcl_values.block(hcl_values.block(rule, "condition"), "path_pattern")["values"]
    action = hcl_values.block(rule, "action")
    if 'aws_lb_target_group.service["broadcast-service"]' not in action.get("target_group_arn", ""):
        problems.append("the /ws rule does not forward to the broadcast target group")

    def alb_matches(path):
        return any(re.fullmatch(re.escape(p).replace(r"\*", ".*").replace(r"\?", "."), path) for p in patterns)

    ws_locations = [p for p in re.findall(r"location (\S+) \{", nginx) if p.startswith("/ws")]
    for route in routes["broadcast-service"]:
        if route.startswith("/ws") and not alb_matches(route.replace("{item_id}", "lot-1")):
            problems.append(f"ALB /ws rule {patterns} misses the broadcast route {route}")
        if route.startswith("/ws") and not any(route.startswith(prefix) for prefix in ws_locations):
            problems.append(f"nginx has no /ws location for {route}")
    for route in routes["api-gateway"]:
        if alb_matches(route.replace("{id}", "lot-1")) or route.startswith("/ws"):
            problems.append(f"the gateway route {route} would be sent to the broadcast service")
    if not re.search(r"location /ws \{[^}]*proxy_pass http://broadcast;[^}]*Upgrade", nginx):
        problems.append("nginx location /ws must proxy to the broadcast upstream with the Upgrade header")
    report.check(f"/ws* ({', '.join(patterns)}) reaches the broadcast service, the API the gateway", problems)

    # --- public ingress --------------------------------------------------------------------
    # Every security group's rules are data given to the security_group module, whose one
    # for_each rule checkov cannot expand; so here: only the ALB takes traffic from anywhere, on
    # 443 and on 80, whose listener only redirects to HTTPS.
    problems = []
    public = []
    callers = [(f"modules/{name}", files) for name, files in modules.items()] + [("environments/example", environment_dir)]
    for where, files in callers:
        for name, body in hcl_values.modules_called(files):
            if str(body.get("source", "")).endswith("/security_group"):
                for rule in re.findall(r"\{[^{}]*\}", str(body.get("rules", ""))):
                    if 'direction = "ingress"' in rule and re.search(r'"(0\.0\.0\.0|::)/0"', rule):
                        port = re.search(r"port = (\d+)", rule)
                        public.append((where, int(port.group(1)) if port else rule))
    if sorted(public, key=str) != [("modules/alb", 443), ("modules/alb", 80)]:
        problems.append(f"ingress from anywhere must be the ALB's 443 and 80 alone, not {public}")
    shared_ingress = dict(((r[0], r[1]), r[2]) for r in hcl_values.resources(modules["security_group"]))[("aws_vpc_security_group_ingress_rule", "this")]
    if shared_ingress.get("cidr_ipv4") != "each.value.cidr_ipv4" or not shared_ingress.get("from_port") == shared_ingress.get("to_port") == "each.value.port":
        problems.append("the security_group module's ingress rule must open each rule's own range and port")
    redirect = hcl_values.block(alb[("aws_lb_listener", "http")], "default_action")
    if alb[("aws_lb_listener", "http")].get("port") != 80 or redirect.get("type") != "redirect":
        problems.append("the ALB's port 80 listener must only redirect (to HTTPS)")
    report.check("only the ALB is open to anywhere, on 443 and on 80 (a redirect)", problems)

    # --- same settings -------------------------------------------------------------------
    problems = []
    for service in SERVICES:
        terraform_names = set(tf_env[service]) | set(tf_secrets[service])
        for instance in COMPOSE_INSTANCES[service]:
            env = compose_env(compose, instance)
            for name in sorted(terraform_names ^ set(env)):
                side = "Terraform" if name in terraform_names else f"compose {instance}"
                problems.append(f"{service}: only {side} gives {name}")
            for name, value in tf_env[service].items():
                if name in env and env[name] != str(value) and name not in ADDRESSES:
                    problems.append(f"{service}: {name} is {value!r} in Terraform, {env[name]!r} in compose {instance}")
            for name in tf_secrets[service]:
                if name in env and "${" not in env[name]:
                    problems.append(f"{service}: {name} is a secret in Terraform but not from .env in compose")
    report.check("compose and Terraform give the services the same settings", problems)

    # --- metrics -------------------------------------------------------------------------
    problems = []
    exported = source_facts.metric_names(ROOT)
    dashboard = json.loads((COMPOSE / "grafana/dashboards/auction.json").read_text())
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= set(re.findall(r"\b((?:gateway|broadcast|archive)_[a-z_]+)\b", target["expr"]))
    problems += [f"the dashboard uses {name}, which no service exports" for name in sorted(used - exported)]
    for wanted in ("gateway_bids_total", "gateway_bid_duration_seconds_bucket", "gateway_outbox_lag",
                   "broadcast_fan_out_latency_seconds_bucket", "broadcast_connections", "archive_consumer_lag"):
        if wanted not in used:
            problems.append(f"the dashboard lacks {wanted} (issue 15 asks for it)")
    scaling = (TERRAFORM / "modules/services/autoscaling.tf").read_text() + tasks_tf
    for name in set(re.findall(r'"\^?(broadcast_[a-z_]+)\$?"', scaling)):
        if name not in exported:
            problems.append(f"autoscaling or the collector uses {name}, which the broadcast service does not export")
    report.check(f"the dashboard ({len(used)} series) and autoscaling use exported metrics", problems)

    # --- schema --------------------------------------------------------------------------
    if args.schema_dir is None or not args.schema_dir.is_dir():
        print("skip  AWS provider schema check: no --schema-dir (cdktf-cdktf-provider-aws not installed)")
    else:
        schema = aws_schema.Schema(args.schema_dir)
        problems, count = [], 0
        for files in list(modules.values()) + [environment_dir]:
            for kind in ("resource", "data"):
                for rtype, name, body, file_name in hcl_values.resources(files, kind):
                    if rtype.startswith("aws_"):
                        count += 1
                        problems += [f"{file_name}: {p}" for p in schema.problems(rtype, body, kind)]
        report.check(f"{count} AWS resources and data sources use only arguments in the provider schema", problems)

    print(f"wiring: {report.failures} of the checks failed" if report.failures else "wiring: every check passed")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
