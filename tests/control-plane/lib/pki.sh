# shellcheck shell=bash
# Credentials of one cluster, made fresh on every start under $RUN_DIR/pki:
# - ca.crt/ca.key: a throw-away CA; the kubeconfig trusts only it, and the
#   controller manager puts it into service-account secrets as ca.crt.
# - apiserver.crt/.key: serving certificate for 127.0.0.1, localhost and the
#   in-cluster names, signed by that CA.
# - sa.key/sa.pub: the service-account token signing key pair.
# - tokens.csv: one static bearer token for user "admin" in system:masters
#   (RBAC stays on, so tests of least-privilege roles use impersonation).
# EC P-256 keys: generated in milliseconds, unlike RSA. Sourced by cluster.sh.

make_pki() {
  local dir=$RUN_DIR/pki
  mkdir "$dir"
  chmod 700 "$dir"
  (
    set -e
    umask 077
    cd "$dir"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key
    openssl req -x509 -new -key ca.key -sha256 -days 30 -subj "/CN=flightdeck-$NAME-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt
    openssl ecparam -name prime256v1 -genkey -noout -out apiserver.key
    openssl req -new -key apiserver.key -subj "/CN=kube-apiserver" -out apiserver.csr
    printf '%s\n' \
      "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" \
      "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local${PKI_EXTRA_SANS:-}" \
      >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 30 \
      -extfile apiserver.ext -out apiserver.crt
    openssl ecparam -name prime256v1 -genkey -noout -out sa.key
    openssl ec -in sa.key -pubout -out sa.pub
    openssl rand -hex 32 >token
    echo "$(cat token),admin,admin,system:masters" >tokens.csv
  ) >"$RUN_DIR/pki.log" 2>&1 || { cat "$RUN_DIR/pki.log" >&2; die "making certificates failed"; }
}

# write_kubeconfig PORT [HOST]: $RUN_DIR/kubeconfig for the admin user.
write_kubeconfig() {
  local port=$1 host=${2:-127.0.0.1} ctx="flightdeck-$NAME"
  (
    umask 077
    cat >"$RUN_DIR/kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $ctx
  cluster:
    server: https://$host:$port
    certificate-authority-data: $(base64 -w0 <"$RUN_DIR/pki/ca.crt")
users:
- name: $ctx-admin
  user:
    token: $(cat "$RUN_DIR/pki/token")
contexts:
- name: $ctx
  context:
    cluster: $ctx
    user: $ctx-admin
    namespace: default
current-context: $ctx
EOF
    mv "$RUN_DIR/kubeconfig.tmp" "$RUN_DIR/kubeconfig"
  )
}
