#!/bin/sh
# The CA, per-node certificates and secrets key of an ApiTap Cluster deployment, made with
# nothing but openssl (docs/security.md says what each certificate must carry).
#
#   make-certs.sh --out DIR [--ca DIR] [--days N] \
#       --coordinator ID=HOST[,HOST...]...  --worker ID...  --user NAME...
#
#   make-certs.sh --out certs --coordinator 1=coordinator-1 --coordinator 2=coordinator-2 \
#       --coordinator 3=coordinator-3 --worker worker-1 --worker worker-2 --user admin
#
# Why a shell script and openssl rather than a tool of ours: an operator can read every
# line of it, runs a tool they already trust, and can redo any step by hand.
#
# What it writes, one folder per kind of holder, so that each kind can be handed its own
# folder (a compose volume subpath, a Kubernetes Secret) and nothing else:
#
#   CA/ca-key.pem, CA/ca.pem        the CA (--ca, default DIR/ca-private). Its key signs every
#                                   certificate: keep it out of every container, offline
#                                   once the certificates exist.
#   DIR/coordinators/               ca.pem, coordinator-<ID>.pem, coordinator-<ID>-key.pem
#   DIR/workers/                    ca.pem, <ID>.pem, <ID>-key.pem (ID: the worker's --id)
#   DIR/users/                      ca.pem, <NAME>.pem, <NAME>-key.pem (apitapctl)
#   DIR/secrets/secrets.key         the coordinators' --secrets-key-file (sealed secrets)
#
# Safe to run again: an existing CA, certificate or secrets key is kept, so a second run
# with one more --worker issues only that worker's certificate. To renew a certificate,
# delete its two files and run again (docs/operations.md).
set -eu

usage() {
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
die() {
  echo "make-certs.sh: $*" >&2
  exit 1
}

out="" ca="" days=825
coordinators="" workers="" users=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || usage; out="$2"; shift 2 ;;
    --ca) [ $# -ge 2 ] || usage; ca="$2"; shift 2 ;;
    --days) [ $# -ge 2 ] || usage; days="$2"; shift 2 ;;
    --coordinator) [ $# -ge 2 ] || usage; coordinators="$coordinators $2"; shift 2 ;;
    --worker) [ $# -ge 2 ] || usage; workers="$workers $2"; shift 2 ;;
    --user) [ $# -ge 2 ] || usage; users="$users $2"; shift 2 ;;
    -h | --help) usage ;;
    *) echo "make-certs.sh: unknown argument $1" >&2; usage ;;
  esac
done
[ -n "$out" ] || usage
[ -n "$ca" ] || ca="$out/ca-private"
case "$days" in '' | *[!0-9]*) die "--days $days is not a number of days" ;; esac
command -v openssl >/dev/null 2>&1 || die "openssl is not installed"

# Names end up in certificates and file names: letters, digits, '.', '_' and '-' only.
check_name() {
  case "$2" in
    '' | *[!A-Za-z0-9._-]* | [.-]*) die "$1 \"$2\" may hold only letters, digits, '.', '_' and '-'" ;;
  esac
}

umask 077
mkdir -p "$ca" "$out/coordinators" "$out/workers" "$out/users" "$out/secrets"

if [ ! -s "$ca/ca-key.pem" ]; then
  [ ! -e "$ca/ca.pem" ] || die "$ca/ca.pem exists without its key $ca/ca-key.pem"
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$ca/ca-key.pem" -out "$ca/ca.pem" -days "$days" -subj "/CN=apitap cluster CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null \
    || die "could not create the CA in $ca"
  echo "created the CA $ca/ca.pem (its key: $ca/ca-key.pem)"
fi
for dir in coordinators workers users; do
  cp "$ca/ca.pem" "$out/$dir/ca.pem"
done
cp "$ca/ca.pem" "$out/ca.pem"

# issue DIR NAME CN SAN EKU: DIR/NAME.pem and DIR/NAME-key.pem, signed by the CA.
issue() {
  if [ -s "$1/$2.pem" ] && [ -s "$1/$2-key.pem" ]; then
    echo "kept $1/$2.pem"
    return
  fi
  ext="$1/.$2.ext"
  printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=$5" "subjectAltName=$4" > "$ext"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1/$2-key.pem" -out "$1/.$2.csr" -subj "/CN=$3" 2>/dev/null \
    || die "could not create the key of $2"
  openssl x509 -req -in "$1/.$2.csr" -CA "$ca/ca.pem" -CAkey "$ca/ca-key.pem" \
    -CAcreateserial -CAserial "$ca/ca.srl" -days "$days" -out "$1/$2.pem" \
    -extfile "$ext" 2>/dev/null || die "could not sign the certificate of $2"
  rm -f "$ext" "$1/.$2.csr"
  echo "issued $1/$2.pem ($4)"
}

for spec in $coordinators; do
  id="${spec%%=*}"
  hosts="${spec#*=}"
  case "$id" in '' | 0 | *[!0-9]*) die "--coordinator $spec: the id must be a positive number" ;; esac
  [ "$hosts" != "$spec" ] && [ -n "$hosts" ] \
    || die "--coordinator $spec: give the hosts it is dialled by, e.g. $id=coordinator-$id"
  sans=""
  for host in $(echo "$hosts" | tr ',' ' '); do
    check_name "host of coordinator $id" "$host"
    case "$host" in
      *[!0-9.]*) sans="${sans}DNS:$host," ;;
      *) sans="${sans}IP:$host," ;;
    esac
  done
  issue "$out/coordinators" "coordinator-$id" "apitap coordinator $id" \
    "${sans}URI:apitap://coordinator/$id" "serverAuth,clientAuth"
done
for id in $workers; do
  check_name "worker id" "$id"
  issue "$out/workers" "$id" "apitap worker $id" "URI:apitap://worker/$id" "clientAuth"
done
for name in $users; do
  check_name "user" "$name"
  issue "$out/users" "$name" "apitap user $name" "URI:apitap://user/$name" "clientAuth"
done

if [ ! -s "$out/secrets/secrets.key" ]; then
  printf 'k1 %s\n' "$(openssl rand -hex 32)" > "$out/secrets/secrets.key"
  echo "created the secrets key $out/secrets/secrets.key"
fi
