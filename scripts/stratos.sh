#!/bin/sh
# Runs a Stratos service with the narrowest Deno permissions its own flags allow.
#
#   scripts/stratos.sh relay|proxy|sat [FLAGS...]                 run the service
#   scripts/stratos.sh --print-flags relay|proxy|sat [FLAGS...]   print its `deno run` flags
#
# `deno task relay|proxy|sat` cannot know where the state folder is or which hosts the flags
# name (deno.json holds fixed words), so those tasks allow any write path and any host. This
# launcher computes them and then `exec`s Deno (no extra process stays behind):
#   --allow-write  $STRATOS_HOME/ROLE only (default $HOME/.stratos/ROLE)
#   --allow-read   relay: that folder (and its --config file); proxy and sat: any path (the Directive,
#                  runnables, static files and the standalone module are wherever you keep them)
#   --allow-net    relay: its --listen address; proxy: --relay and --http; sat: --relay and the
#                  --allow-hosts runnables may fetch from (standalone: --http instead of
#                  --relay); --metrics where given; plus STRATOS_EXTRA_HOSTS (e.g. the database
#                  of the Directive's `connections`, which the sat dials)
#   other flags    those of the task in deno.json (--allow-env by name, the proxy's to any
#                  name; --unstable-*), or of the bundle's "// Run:" first line
# Flags and environment variables are read as the services read them (flag, else variable,
# else default). Source mode runs src/ROLE.ts with this repository's deno.json; with
# STRATOS_DIST=DIR it runs the bundle DIR/ROLE.js (`deno task bundle`), as the container does.
# STRATOS_DENO names the deno binary (default: deno on PATH).
set -euf # -f: no globbing (host lists hold "*")

die() {
  echo "stratos.sh: $*" >&2
  exit 64
}

print=0
if [ "${1:-}" = "--print-flags" ]; then
  print=1
  shift
fi
USAGE="usage: stratos.sh [--print-flags] relay|proxy|sat [FLAGS...]
(ROLE --help lists the flags of a service)"
role=${1:-}
case "$role" in
relay | proxy | sat) shift ;;
-h | --help)
  echo "$USAGE"
  exit 0
  ;;
*) die "${role:+unknown role \"$role\": }expected relay, proxy or sat
$USAGE" ;;
esac

# Relative paths are relative to where the user started us (deno task runs in the repo root).
base=${INIT_CWD:-$PWD}
if [ -n "${STRATOS_HOME:-}" ]; then
  home=$STRATOS_HOME
elif [ -n "${HOME:-}" ]; then
  home=$HOME/.stratos
else
  die "neither STRATOS_HOME nor HOME is set: set one, e.g. STRATOS_HOME=/var/lib/stratos"
fi
case "$home" in /*) ;; *) home=$base/$home ;; esac
# The service must find the same folder we allow: pass it on, absolute.
STRATOS_HOME=$home
export STRATOS_HOME
state=$home/$role

# The values that decide network access, as the service resolves them: --flag VALUE or
# --flag=VALUE, else the environment variable, else the --config file, else the default.
listen=${STRATOS_RELAY_LISTEN:-}
relay=${STRATOS_RELAY:-}
http=${STRATOS_HTTP:-}
hosts=${STRATOS_ALLOW_HOSTS:-}
metrics=${STRATOS_METRICS:-}
config=${STRATOS_CONFIG:-}
module=
want=
for arg in "$@"; do
  if [ -n "$want" ]; then
    case "$want" in
    listen) listen=$arg ;;
    relay) relay=$arg ;;
    http) http=$arg ;;
    allow-hosts) hosts=$arg ;;
    metrics) metrics=$arg ;;
    config) config=$arg ;;
    esac
    want=
    continue
  fi
  case "$arg" in
  --listen=*) listen=${arg#*=} ;;
  --relay=*) relay=${arg#*=} ;;
  --http=*) http=${arg#*=} ;;
  --allow-hosts=*) hosts=${arg#*=} ;;
  --metrics=*) metrics=${arg#*=} ;;
  --config=*) config=${arg#*=} ;;
  --help | --check | --*=*) ;;
  --listen) want=listen ;;
  --relay) want=relay ;;
  --http) want=http ;;
  --allow-hosts) want=allow-hosts ;;
  --metrics) want=metrics ;;
  --config) want=config ;;
  --*) want=skip ;;
  -*) ;;
  *) [ -n "$module" ] || module=$arg ;;
  esac
done
if [ -n "$config" ]; then
  case "$config" in /*) ;; *) config=$base/$config ;; esac
  [ -r "$config" ] || die "--config $config: cannot read it"
fi

# A string value of a flat YAML (`key: value`) or JSON (`"key": "value"`) config file.
config_value() {
  [ -n "$config" ] || return 0
  found=$(grep -o "\"$1\"[[:space:]]*:[[:space:]]*\"[^\"]*\"" "$config" | head -n 1 |
    sed 's/^[^:]*:[[:space:]]*"\(.*\)"$/\1/') || true
  if [ -z "$found" ]; then
    found=$(sed -n "s/^$1:[[:space:]]*//p" "$config" | head -n 1 |
      sed -e 's/[[:space:]]#.*$//' -e 's/[[:space:]]*$//' -e "s/^[\"']\(.*\)[\"']\$/\\1/") || true
  fi
  printf '%s' "$found"
}
[ -n "$listen" ] || listen=$(config_value listen)
[ -n "$relay" ] || relay=$(config_value relay)
[ -n "$http" ] || http=$(config_value http)
[ -n "$hosts" ] || hosts=$(config_value allow-hosts)
[ -n "$metrics" ] || metrics=$(config_value metrics)
listen=${listen:-0.0.0.0:4000}
relay=${relay:-127.0.0.1:4000}

# A HOST:PORT flag value as a Deno net permission: port 0 (any free port) allows the host.
net_of() {
  address=$1
  case "$address" in :*) address=0.0.0.0$address ;; esac
  case "$address" in
  *:0) printf '%s' "${address%:0}" ;;
  *) printf '%s' "$address" ;;
  esac
}

net=
add_net() {
  [ -n "$1" ] || return 0
  if [ "$1" = "*" ]; then net="*"; fi
  [ "$net" = "*" ] && return 0
  net=${net:+$net,}$1
}
case "$role" in
relay) add_net "$(net_of "$listen")" ;;
proxy)
  add_net "$(net_of "$relay")"
  add_net "$(net_of "${http:-0.0.0.0:8080}")"
  ;;
sat)
  if [ -n "$module" ]; then
    add_net "$(net_of "${http:-0.0.0.0:${SAT_HTTP_PORT:-8080}}")"
  else
    add_net "$(net_of "$relay")"
  fi
  old_ifs=$IFS
  IFS=,
  for host in $hosts; do
    host=$(printf '%s' "$host" | tr -d ' ')
    add_net "$host"
  done
  IFS=$old_ifs
  ;;
esac
# A /metrics listener (relay, sat), where one is asked for.
[ -z "$metrics" ] || add_net "$(net_of "$metrics")"
old_ifs=$IFS
IFS=,
for host in ${STRATOS_EXTRA_HOSTS:-}; do add_net "$(printf '%s' "$host" | tr -d ' ')"; done
IFS=$old_ifs

repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${STRATOS_DIST:-}" ]; then
  entry=$STRATOS_DIST/$role.js
  [ -r "$entry" ] ||
    die "cannot read $entry: build it with \`deno task bundle\` (STRATOS_DIST=$STRATOS_DIST)"
  line=$(head -n 1 "$entry")
else
  entry=$repo/src/$role.ts
  line=$(grep "^ *\"$role\": \"deno run " "$repo/deno.json" | head -n 1)
fi
# The task's own words between `deno run` and the entry point.
task=$(printf '%s\n' "$line" | sed -n "s/^.*deno run \(.*\) \(src\/\)\{0,1\}$role\.[jt]s.*\$/\1/p")
[ -n "$task" ] ||
  die "cannot find the \"deno run FLAGS $role\" line in ${STRATOS_DIST:+$entry}${STRATOS_DIST:-$repo/deno.json}"

# Deno's flags, one per line (paths may hold spaces, never a newline).
nl='
'
flags="--no-prompt$nl--allow-write=$state"
case "$role" in
relay) flags="$flags$nl--allow-read=$state${config:+,$config}" ;;
*) flags="$flags$nl--allow-read" ;;
esac
case "$net" in
"") ;;
"*") flags="$flags$nl--allow-net" ;;
*) flags="$flags$nl--allow-net=$net" ;;
esac
IFS=' '
for word in $task; do
  case "$word" in
  --no-prompt | --allow-read* | --allow-write* | --allow-net*) ;;
  *) flags="$flags$nl$word" ;;
  esac
done
IFS=$old_ifs
if [ -n "${STRATOS_DIST:-}" ]; then
  case "$flags" in
  *--unstable-worker-options*) ;;
  *) flags="$flags$nl--unstable-worker-options" ;;
  esac
else
  flags="$flags$nl--config$nl$repo/deno.json"
fi

if [ "$print" = 1 ]; then
  printf '%s\n' "$flags"
  exit 0
fi
IFS=$nl
# shellcheck disable=SC2086 # split on newlines only, globbing is off
set -- $flags "$entry" "$@"
exec "${STRATOS_DENO:-deno}" run "$@"
