#!/usr/bin/env bash
# A deployment, run by bash on the server (or in a simulated server's local workspace).
# servers/runners/script.py puts a preamble before this file that exports git's settings
# and sets the arguments:
#   $1 git URL   $2 branch   $3 subdirectory ("" for the repository's root)
#   $4 the app directory   $5 "yes" to build and start the app, "no" to skip that
# Lines starting with "::" are for the panel (`::commit <sha>`); the rest is the log the
# customer reads, so the URL (which may carry a token) is never printed by us. When a
# command fails, the last line says which step it was.
set -euo pipefail

url=$1
branch=$2
subdirectory=$3
app_dir=$4
build=$5

step="starting"
on_exit() {
  local status=$?
  if [ "$status" -ne 0 ]; then
    echo "==> Failed while ${step} (exit status ${status})."
  fi
}
trap on_exit EXIT

fail() {
  echo "$*"
  exit 1
}

step="fetching ${branch}"
echo "==> Fetching ${branch}"
git check-ref-format "refs/heads/${branch}" || fail "\"${branch}\" is not a valid branch name."
mkdir -p -- "$app_dir"
cd -- "$app_dir"
if [ ! -d .git ]; then
  git init --quiet --initial-branch=deploy
fi
# "--" before the URL: nothing the customer typed is read as an option.
git fetch --quiet --depth 1 --no-tags -- "$url" "refs/heads/${branch}"

step="checking out ${branch}"
git -c advice.detachedHead=false checkout --quiet --force --detach FETCH_HEAD
# Untracked files go; ignored ones (.env, data the app keeps) stay.
git clean -q -f -d
sha=$(git rev-parse HEAD)
short=$(git rev-parse --short HEAD)
echo "::commit ${sha}"
echo "Checked out ${short}: $(git log -1 --format=%s HEAD)"

if [ -n "$subdirectory" ]; then
  step="entering ${subdirectory}"
  case "/${subdirectory}/" in
    //* | */../*) fail "The directory \"${subdirectory}\" is outside the repository." ;;
  esac
  [ -d "$subdirectory" ] || fail "The directory \"${subdirectory}\" does not exist in the repository at ${short}."
  cd -- "$subdirectory"
fi

if [ "$build" != "yes" ]; then
  echo "Build skipped: this server is simulated, so nothing was built or started."
  exit 0
fi

compose=""
for name in compose.yaml compose.yml docker-compose.yml docker-compose.yaml; do
  if [ -f "$name" ]; then
    compose=$name
    break
  fi
done

if [ -n "$compose" ]; then
  step="building and starting with docker compose"
  echo "==> Building and starting the app with docker compose (${compose})"
  docker compose up -d --build --remove-orphans
elif [ -f Dockerfile ]; then
  step="building the image"
  echo "==> Building the image app:${short}"
  docker build -t "app:${short}" .
  step="starting the container"
  # Caddy on the server proxies the app's domains to localhost:8000.
  echo "==> Starting the container app on 127.0.0.1:8000"
  docker rm -f app >/dev/null 2>&1 || true
  docker run -d --name app --restart unless-stopped -e PORT=8000 \
    -p 127.0.0.1:8000:8000 "app:${short}"
else
  echo "Nothing to build: the repository has no compose file or Dockerfile. The code is in ${PWD}."
  exit 0
fi
echo "==> Deployed ${short}."
