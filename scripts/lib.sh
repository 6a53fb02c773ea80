# Shared by scripts/test and scripts/demo.
# Debian packages the tests, the BPF build and the lab need.
RVS_PACKAGES="clang llvm libbpf-dev bpftool iproute2 iputils-ping ethtool nftables iptables nginx-light socat iperf3 wrk hping3 tcpdump procps valgrind keepalived"

install_packages() {
    local missing=()
    for p in $RVS_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "note: not root, cannot install: ${missing[*]} (tests needing them will skip and say why)" >&2
        return 0
    fi
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Packages whose install may start a root-namespace daemon (nginx-light's
    # nginx; keepalived, were a configuration there): the lab runs its own
    # per namespace, and rvs only reads keepalived's samples.
    for d in nginx keepalived; do
        if command -v systemctl >/dev/null 2>&1; then systemctl stop "$d" >/dev/null 2>&1 || true; fi
        pkill -x "$d" >/dev/null 2>&1 || true
    done
}

step() {
    local name=$1
    shift
    echo "=== $name"
    local t0=$SECONDS
    "$@"
    echo "=== $name: done in $((SECONDS - t0)) s"
}
