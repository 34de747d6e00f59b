#!/usr/bin/env bash
# make-tls.sh: certificates for dispatchd's TLS with the openssl CLI (EC P-256, SHA-256).
#
#   deploy/make-tls.sh dev DIR
#       The development set `make run` uses, made once and kept (re-made only when missing,
#       expiring within a day or not signed by DIR/ca.pem): DIR/ca.pem + ca.key (the CA the
#       clients trust), DIR/server.pem + server.key for 127.0.0.1, ::1 and localhost, and
#       DIR/station.pem + station.key, a client certificate for station consoles.
#   deploy/make-tls.sh ca DIR NAME
#       A new CA: DIR/NAME.pem, DIR/NAME.key.
#   deploy/make-tls.sh cert DIR CA NAME SAN DAYS [server|client]
#       DIR/NAME.pem + NAME.key signed by DIR/CA.pem, subjectAltName SAN (e.g.
#       "IP:127.0.0.1,DNS:localhost"), valid DAYS days (negative: already expired).
#
# Keys are written mode 600. Production certificates come from the county's own CA; point
# tls_cert_file, tls_key_file (and tls_ca_file for client certificates) at them.
set -euo pipefail

die() {
    echo "make-tls: $*" >&2
    exit 1
}
command -v openssl >/dev/null || die "the openssl command is missing (apt-get install openssl)"

new_key() { # PATH
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null) ||
        die "cannot write the key $1"
}

make_ca() { # DIR NAME
    local dir=$1 name=$2
    mkdir -p "$dir"
    new_key "$dir/$name.key"
    openssl req -x509 -new -key "$dir/$name.key" -sha256 -days 3650 -subj "/CN=Careline $name" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$dir/$name.pem" 2>/dev/null || die "cannot make the CA $dir/$name.pem"
}

make_cert() { # DIR CA NAME SAN DAYS KIND
    local dir=$1 ca=$2 name=$3 san=$4 days=$5 kind=${6:-server} ext
    [[ -f $dir/$ca.pem && -f $dir/$ca.key ]] || die "no CA $dir/$ca.pem (make it with: make-tls.sh ca $dir $ca)"
    new_key "$dir/$name.key"
    ext=$(mktemp)
    {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=critical,digitalSignature"
        [[ $kind == client ]] && echo "extendedKeyUsage=clientAuth" || echo "extendedKeyUsage=serverAuth"
        [[ -n $san ]] && echo "subjectAltName=$san"
    } >"$ext"
    openssl req -new -key "$dir/$name.key" -subj "/CN=$name" 2>/dev/null |
        openssl x509 -req -CA "$dir/$ca.pem" -CAkey "$dir/$ca.key" -CAcreateserial \
            -CAserial "$dir/$ca.srl" -sha256 -days "$days" -extfile "$ext" -out "$dir/$name.pem" 2>/dev/null ||
        {
            rm -f "$ext"
            die "cannot make the certificate $dir/$name.pem"
        }
    rm -f "$ext"
}

# usable DIR NAME: NAME.pem exists, is signed by ca.pem and valid for at least one more day
usable() {
    [[ -f $1/$2.pem && -f $1/$2.key ]] &&
        openssl x509 -in "$1/$2.pem" -noout -checkend 86400 >/dev/null 2>&1 &&
        openssl verify -CAfile "$1/ca.pem" "$1/$2.pem" >/dev/null 2>&1
}

case ${1:-} in
dev)
    dir=${2:?usage: make-tls.sh dev DIR}
    mkdir -p "$dir"
    if ! [[ -f $dir/ca.pem && -f $dir/ca.key ]] ||
        ! openssl x509 -in "$dir/ca.pem" -noout -checkend 86400 >/dev/null 2>&1; then
        make_ca "$dir" ca
        rm -f "$dir/server.pem" "$dir/station.pem"
        echo "make-tls: new development CA $dir/ca.pem"
    fi
    if ! usable "$dir" server; then
        make_cert "$dir" ca server "IP:127.0.0.1,IP:::1,DNS:localhost" 825 server
        echo "make-tls: new server certificate $dir/server.pem (127.0.0.1, ::1, localhost)"
    fi
    if ! usable "$dir" station; then
        make_cert "$dir" ca station "" 825 client
        echo "make-tls: new station client certificate $dir/station.pem"
    fi
    ;;
ca)
    make_ca "${2:?usage: make-tls.sh ca DIR NAME}" "${3:?usage: make-tls.sh ca DIR NAME}"
    ;;
cert)
    (($# >= 6)) || die "usage: make-tls.sh cert DIR CA NAME SAN DAYS [server|client]"
    make_cert "$2" "$3" "$4" "$5" "$6" "${7:-server}"
    ;;
*)
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
