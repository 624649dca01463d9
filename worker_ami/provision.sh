#!/usr/bin/env bash
# Bake the imgsite worker into a machine image. Packer runs it as root on Amazon Linux 2023
# (worker.pkr.hcl), after uploading the application to $APP_SOURCE.
#
# Each step is a function. `provision.sh` runs every step in order; `provision.sh STEP...` runs
# only those (tests/deploy/test_provision_script.py runs the application steps in a throwaway
# prefix). Everything is configured by environment variables, all optional:
#   APP_SOURCE                the uploaded repository (default: this script's repository)
#   PREFIX                    where the worker lives (default /opt/imgsite, as in the unit)
#   VENV                      default $PREFIX/venv (the models go to $PREFIX/models)
#   PYTHON                    the interpreter for the venv (default python3.11)
#   REQUIREMENTS              what the venv gets, relative to the application (requirements/worker.txt)
#   RESNET50_WEIGHTS_URL      https://, s3:// or file:// URL of ResNet50 ImageNet weights (.h5);
#                             empty: no ResNet50 on this image (EfficientNet-Lite0 is always there)
#   RESNET50_WEIGHTS_SHA256   the file's expected SHA-256, checked when given
set -euo pipefail

APP_SOURCE=${APP_SOURCE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
PREFIX=${PREFIX:-/opt/imgsite}
APP_DIR=$PREFIX/app
VENV=${VENV:-$PREFIX/venv}
MODEL_DIR=$PREFIX/models
PYTHON=${PYTHON:-python3.11}
REQUIREMENTS=${REQUIREMENTS:-requirements/worker.txt}
SERVICE_USER=imgsite
UNIT_DIR=/etc/systemd/system
RESNET50_WEIGHTS_URL=${RESNET50_WEIGHTS_URL:-}
RESNET50_WEIGHTS_SHA256=${RESNET50_WEIGHTS_SHA256:-}
# Where settings.RESNET50_WEIGHTS points on the worker (imgsite-worker.service sets it).
RESNET50_WEIGHTS=$MODEL_DIR/resnet50_imagenet.weights.h5
# What the worker needs from the repository; worker.pkr.hcl uploads the same list.
APP_PATHS=(manage.py imgsite accounts classifier scaling deploy templates static requirements worker_ami)

log() { printf '==> %s\n' "$*"; }
die() { printf 'provision.sh: %s\n' "$*" >&2; exit 1; }

install_system_packages() {
  log "system packages: Python 3.11"
  dnf install -y -q python3.11 python3.11-pip
  dnf clean all
}

create_service_user() {
  log "service user $SERVICE_USER (no login, no home of its own: systemd gives it /var/lib/imgsite)"
  id -u "$SERVICE_USER" >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /var/lib/imgsite --shell /usr/sbin/nologin "$SERVICE_USER"
}

install_app() {
  log "application into $APP_DIR"
  rm -rf "${APP_DIR:?}"
  mkdir -p "$APP_DIR"
  for path in "${APP_PATHS[@]}"; do
    cp -R "$APP_SOURCE/$path" "$APP_DIR/"
  done
  find "$APP_DIR" -name __pycache__ -prune -exec rm -rf {} +
}

make_venv() {
  log "virtualenv $VENV with $REQUIREMENTS"
  "$PYTHON" -m venv "$VENV"
  # The lock has a hash for every file: pip installs exactly what was locked, or stops.
  (cd "$APP_DIR" && "$VENV/bin/python" -m pip install --no-cache-dir --quiet --disable-pip-version-check \
    --require-hashes -r "$REQUIREMENTS")
}

# manage.py with the worker's model paths; a scratch VAR_DIR, so nothing of the bake stays behind.
# DEBUG=true: these commands serve nothing, and the image must hold no secret key.
run_django() {
  local scratch
  scratch=$(mktemp -d)
  (cd "$APP_DIR" && env -u AWS_ENDPOINT_URL -u DATABASE_URL DJANGO_SETTINGS_MODULE=imgsite.settings DEBUG=true \
    MODEL_DIR="$MODEL_DIR" VAR_DIR="$scratch" RESNET50_WEIGHTS="$RESNET50_WEIGHTS" "$VENV/bin/python" manage.py "$@")
  rm -rf "$scratch"
}

build_model() {
  log "model artifacts in $MODEL_DIR"
  mkdir -p "$MODEL_DIR"
  run_django build_model
}

fetch() {  # fetch URL FILE
  case $1 in
    s3://*) aws s3 cp --only-show-errors "$1" "$2" ;;  # through the build instance's profile
    *) curl --fail --silent --show-error --location --retry 3 --output "$2" "$1" ;;
  esac
}

place_resnet50_weights() {
  if [[ -z $RESNET50_WEIGHTS_URL ]]; then
    log "no RESNET50_WEIGHTS_URL: no ResNet50 on this image (CLASSIFIER_MODEL=resnet50 would refuse to start)"
    return
  fi
  local name=${RESNET50_WEIGHTS_URL%%\?*}
  name=${name##*/}
  [[ $name == *.h5 ]] || die "RESNET50_WEIGHTS_URL must name a .h5 file, not $name"
  log "ResNet50 weights from $RESNET50_WEIGHTS_URL"
  local download
  download=$(mktemp -d)
  fetch "$RESNET50_WEIGHTS_URL" "$download/$name"
  if [[ -n $RESNET50_WEIGHTS_SHA256 ]]; then
    echo "$RESNET50_WEIGHTS_SHA256  $download/$name" | sha256sum --check --quiet - || die "SHA-256 mismatch for $name"
  fi
  # Keras 3 reads .weights.h5 files, while Keras-applications publishes a legacy .h5: loading
  # the file into the architecture and saving it again writes the format the worker expects,
  # and proves before the image is made that the file fits.
  mkdir -p "$MODEL_DIR"
  (cd "$APP_DIR" && "$VENV/bin/python" - "$download/$name" "$RESNET50_WEIGHTS" <<'PY'
import sys

from classifier.resnet import build_keras_model

model = build_keras_model()
model.load_weights(sys.argv[1])
model.save_weights(sys.argv[2])
print(f"placed {sys.argv[2]}")
PY
  )
  rm -rf "$download"
}

smoke_test() {
  log "smoke test: classify one picture with each model on the image"
  local picture
  picture=$(mktemp --suffix=.png)
  "$VENV/bin/python" -c "import sys; from PIL import Image; Image.new('RGB', (320, 240), (200, 120, 40)).save(sys.argv[1])" \
    "$picture"
  CLASSIFIER_MODEL=efficientnet_lite0 run_django classify --top 1 "$picture"
  if [[ -f $RESNET50_WEIGHTS ]]; then
    CLASSIFIER_MODEL=resnet50 run_django classify --top 1 "$picture"
  fi
  rm -f "$picture"
}

install_unit() {
  log "systemd unit imgsite-worker.service (enabled by the user data at first boot)"
  install -D -m 0644 "$APP_DIR/worker_ami/imgsite-worker.service" "$UNIT_DIR/imgsite-worker.service"
  install -d -m 0755 /etc/imgsite
  systemctl daemon-reload
}

lock_down() {
  log "read-only for the service: code, venv and models belong to root"
  "$VENV/bin/python" -m compileall -q "$APP_DIR"
  chown -R root:root "$PREFIX"
  chmod -R u+rwX,go+rX,go-w "$PREFIX"
}

clean_up() {
  log "clean up"
  if [[ $APP_SOURCE == /tmp/* ]]; then rm -rf "$APP_SOURCE"; fi
  rm -rf /root/.cache /root/.keras
}

STEPS=(install_system_packages create_service_user install_app make_venv build_model place_resnet50_weights
  smoke_test install_unit lock_down clean_up)

main() {
  local started=$SECONDS steps=("$@")
  ((${#steps[@]})) || steps=("${STEPS[@]}")
  for step in "${steps[@]}"; do
    [[ " ${STEPS[*]} " == *" $step "* ]] || die "no step $step (steps: ${STEPS[*]})"
    "$step"
  done
  log "done in $((SECONDS - started)) s"
}

main "$@"
