#!/bin/bash
# A dms-init written for dpfdoctor's sandbox tests: it finds the DPU the way
# dmsinit.sh does (docs/versions.md) -- BlueField PCI functions in sysfs by
# device ID (0xa2dc BlueField-3, 0xa2d6 BlueField-2), the PF0 netdev under
# the function's net/ directory, the serial number from lspci's VPD, the
# rshim misc files under /dev -- and then makes the kubectl calls of the
# v25.7-era script (variant C): version, the certificate path when
# --external-certificate is none, DPUDevice named after the serial number,
# its status patch, the Node's UID, DPUNode. It is not NVIDIA's file.

set -euo pipefail

# script_variant is whose behaviour the fixture copies where the versions
# differ (docs/versions.md): "C", the v25.7-era script; "B", the v25.4.0
# script (DPUDevice <node>-<pci> with spec.pciAddress, no status patch, one
# unchecked read of each Secret key); "story", the widely shared v25.4.0
# story that no real script tells (B, but a Forbidden Secret read is retried
# until it times out). Tests run copies with another value.
script_variant="C"
# The certificate path's Secret wait: 30 attempts, 2 seconds apart.
secret_wait_attempts=30
secret_wait_seconds=2

external_certificate="none"
kube_node_ref=""
dms_ip="0.0.0.0"
dms_port="9339"
namespace="dpf-operator-system"
dms_conf_dir="/opt/dpf/dms"
dms_image_dir=""
node_reboot_method="gNOI"
issuer="dpf-provisioning-issuer"
cmd="register"
kubectl_cmd="kubectl"
pci_addresses=()
dpudevice_names=()

log() {
    echo "[dmsinit] $*"
}

error() {
    echo "[dmsinit] Error (${FUNCNAME[1]}:${BASH_LINENO[0]}): $*" >&2
    exit 1
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --kubeconfig) kubectl_cmd="kubectl --kubeconfig $2"; shift 2 ;;
        --external-certificate) external_certificate="$2"; shift 2 ;;
        --kube-node-ref) kube_node_ref="$2"; shift 2 ;;
        --dms-ip) dms_ip="$2"; shift 2 ;;
        --dms-port) dms_port="$2"; shift 2 ;;
        --namespace) namespace="$2"; shift 2 ;;
        --dms-conf-dir) dms_conf_dir="$2"; shift 2 ;;
        --dms-image-dir) dms_image_dir="$2"; shift 2 ;;
        --node-reboot-method) node_reboot_method="$2"; shift 2 ;;
        --issuer) issuer="$2"; shift 2 ;;
        --cmd) cmd="$2"; shift 2 ;;
        *) echo "Unknown option: $1"; exit 1 ;;
    esac
done
dms_image_dir="${dms_image_dir:-$dms_conf_dir/bfb}"
log "DMS image directory: $dms_image_dir"

# format_pci_address 0000:3b:00.0 -> 0000-3b-00
format_pci_address() {
    local pci=${1%.*}
    echo "${pci//:/-}"
}

get_pf0_name() {
    local net_dir="/sys/bus/pci/devices/$1/net"
    if [ ! -d "$net_dir" ]; then
        error "Error: Network directory not found: $net_dir"
    fi
    local name
    name=$(ls "$net_dir" | head -n 1)
    if [ -z "$name" ]; then
        error "Error: No network interface found in $net_dir"
    fi
    echo "$name"
}

discover_dpu() {
    local dev vendor device pci
    for dev in /sys/bus/pci/devices/*; do
        [ -r "$dev/vendor" ] || continue
        vendor=$(cat "$dev/vendor")
        device=$(cat "$dev/device")
        [ "$vendor" == "0x15b3" ] || continue
        if [ "$device" == "0xa2dc" ] || [ "$device" == "0xa2d6" ]; then
            pci=$(basename "$dev")
            [[ "$pci" == *.0 ]] || continue
            pci_addresses+=("$pci")
            log "Discovered DPU:"
            log "  PCI Address: $(format_pci_address "$pci")"
            log "  Device ID: $device"
            log "  PF0 Name: $(get_pf0_name "$pci")"
        fi
    done
    log "Total DPUs discovered: ${#pci_addresses[@]}"
}

get_serial_number() {
    local serial
    serial=$(lspci -vvs "$1" | grep "\[SN\]" | awk '{print $NF}')
    [ -n "$serial" ] || return 1
    echo "${serial,,}"
}

# check_rshim_not_occupied: the host's rshim driver names the device it
# holds in /dev/rshim<N>/misc (DEV_NAME pcie-<pci>).
check_rshim_not_occupied() {
    local pci short misc
    log "Using /dev/termination-log for output"
    for pci in "${pci_addresses[@]}"; do
        short=$(format_pci_address "$pci")
        short=${short//-/:}
        log "Get PCI address: $short"
        for misc in /dev/rshim*/misc; do
            [ -r "$misc" ] || continue
            if grep -q "DEV_NAME.*$pci" "$misc"; then
                echo "$short" > /dev/termination-log
                exit 1
            fi
        done
    done
}

check_and_install_kubectl() {
    command -v kubectl > /dev/null || error "Failed to download kubectl"
    log "kubectl already installed"
    local output
    if ! output=$($kubectl_cmd version 2>&1); then
        error "Failed to check kubectl version: $output"
    fi
}

check_resource_exists() {
    if $kubectl_cmd -n "$namespace" get -o json "$1" "$2" > /dev/null 2>&1; then
        log "Resource $2 of type $1 already exists, skipping creation"
        return 0
    fi
    return 1
}

# read_secret_files writes the Secret's three keys to the certificate
# directory, reading each once with kubectl's stderr shown and its status
# unchecked, as B does; it fails when a file is left empty.
read_secret_files() {
    local dir="$dms_conf_dir/certs"
    $kubectl_cmd get secret -n "$namespace" "$1" -o jsonpath='{.data.ca\.crt}' | base64 --decode > "$dir/ca.crt"
    $kubectl_cmd get secret -n "$namespace" "$1" -o jsonpath='{.data.tls\.crt}' | base64 --decode > "$dir/tls.crt"
    $kubectl_cmd get secret -n "$namespace" "$1" -o jsonpath='{.data.tls\.key}' | base64 --decode > "$dir/tls.key"
    [ -s "$dir/ca.crt" ] && [ -s "$dir/tls.crt" ] && [ -s "$dir/tls.key" ]
}

# create_certificate is the --external-certificate none path: the node's
# Certificate, then its Secret's keys in the certificate directory.
create_certificate() {
    local cert="$kube_node_ref-dms-server-cert" secret="$kube_node_ref-server-secret" output i
    if ! check_resource_exists Certificate "$cert"; then
        log "Creating certificate"
        if ! output=$(cat <<EOF | $kubectl_cmd apply -f - 2>&1
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: $cert
  namespace: $namespace
spec:
  secretName: $secret
  commonName: $cert
  duration: 8760h
  issuerRef:
    name: $issuer
    kind: Issuer
  ipAddresses:
  - "$dms_ip"
EOF
        ); then
            error "Failed to create certificate $cert: $output"
        fi
        log "Certificate $cert created successfully"
    fi
    mkdir -p "$dms_conf_dir/certs"
    if [ "$script_variant" == "C" ]; then
        # C polls the three keys with errors hidden: Forbidden and NotFound
        # look the same.
        local ca="" tls="" key=""
        for ((i = 1; i <= secret_wait_attempts; i++)); do
            ca=$($kubectl_cmd get secret -n "$namespace" "$secret" -o jsonpath='{.data.ca\.crt}' 2> /dev/null || true)
            tls=$($kubectl_cmd get secret -n "$namespace" "$secret" -o jsonpath='{.data.tls\.crt}' 2> /dev/null || true)
            key=$($kubectl_cmd get secret -n "$namespace" "$secret" -o jsonpath='{.data.tls\.key}' 2> /dev/null || true)
            if [ -n "$ca" ] && [ -n "$tls" ] && [ -n "$key" ]; then
                echo "$ca" | base64 --decode > "$dms_conf_dir/certs/ca.crt"
                echo "$tls" | base64 --decode > "$dms_conf_dir/certs/tls.crt"
                echo "$key" | base64 --decode > "$dms_conf_dir/certs/tls.key"
                log "Certificate secret name: $secret"
                return 0
            fi
            log "Waiting for secret $secret to be fully populated... (attempt $i/$secret_wait_attempts)"
            sleep "$secret_wait_seconds"
        done
        error "Timed out waiting for secret $secret to be fully populated. ca.crt: ${#ca} chars, tls.crt: ${#tls} chars, tls.key: ${#key} chars"
    fi
    # B and the story poll the Certificate's spec.secretName, stderr shown.
    local name=""
    for ((i = 1; i <= secret_wait_attempts; i++)); do
        name=$($kubectl_cmd get cert -n "$namespace" "$cert" -o jsonpath='{.spec.secretName}')
        [ -z "$name" ] || break
        log "Waiting for certificate secret to be created... (attempt $i/$secret_wait_attempts)"
        sleep "$secret_wait_seconds"
    done
    if [ -z "$name" ]; then
        error "Timed out waiting for certificate secret to be created"
    fi
    log "Certificate secret name: $name"
    if [ "$script_variant" == "B" ]; then
        read_secret_files "$name" || true
        return 0
    fi
    for ((i = 1; i <= secret_wait_attempts; i++)); do
        if read_secret_files "$name"; then
            return 0
        fi
        log "Waiting for certificate secret to be created... (attempt $i/$secret_wait_attempts)"
        sleep "$secret_wait_seconds"
    done
    error "Timed out waiting for certificate secret to be created"
}

create_dpu_device() {
    local pci=$1 serial name pf0 output spec
    if ! serial=$(get_serial_number "$pci"); then
        error "Failed to get serial number for PCI address $pci"
    fi
    pf0=$(get_pf0_name "$pci")
    # C names the DPUDevice after the serial number and patches its status;
    # B (and the story) name it <node>-<pci> and set spec.pciAddress.
    name="$serial"
    spec="serialNumber: ${serial^^}"
    if [ "$script_variant" != "C" ]; then
        name="$kube_node_ref-$(format_pci_address "$pci")"
        spec="pciAddress: $(format_pci_address "$pci")"
    fi
    if ! check_resource_exists DPUDevice "$name"; then
        log "Creating DPUDevice for PCI address $(format_pci_address "$pci")"
        if ! output=$(cat <<EOF | $kubectl_cmd apply -f - 2>&1
apiVersion: provisioning.dpu.nvidia.com/v1alpha1
kind: DPUDevice
metadata:
  name: $name
  namespace: $namespace
spec:
  $spec
  pf0Name: $pf0
  numberOfPFs: 2
EOF
        ); then
            error "Failed to create DPUDevice $name: $output"
        fi
        log "DPUDevice $name applied successfully"
    fi
    if [ "$script_variant" != "C" ]; then
        dpudevice_names+=("$name")
        log "Added $name to dpudevice_names array"
        return 0
    fi
    if ! output=$($kubectl_cmd patch dpudevice "$name" -n "$namespace" --subresource status --type=merge -p "{\"status\":{\"pciAddress\":\"$(format_pci_address "$pci")\"}}" 2>&1); then
        error "Failed to update PCI address for DPUDevice $name: $output"
    fi
    log "Updated PCI address for DPUDevice $name: $(format_pci_address "$pci")"
    dpudevice_names+=("$name")
    log "Added $name to dpudevice_names array"
}

create_dpunode() {
    if check_resource_exists DPUNode "$kube_node_ref"; then
        return 0
    fi
    log "Creating DPUNode"
    local uid output dpus="" name
    uid=$($kubectl_cmd get node "$kube_node_ref" -o jsonpath='{.metadata.uid}')
    if [ -z "$uid" ]; then
        error "Failed to get UID for node $kube_node_ref"
    fi
    for name in "${dpudevice_names[@]}"; do
        dpus="$dpus
    - name: $name"
    done
    if ! output=$(cat <<EOF | $kubectl_cmd apply -f - 2>&1
apiVersion: provisioning.dpu.nvidia.com/v1alpha1
kind: DPUNode
metadata:
  name: $kube_node_ref
  namespace: $namespace
  ownerReferences:
  - apiVersion: v1
    kind: Node
    name: $kube_node_ref
    uid: $uid
    controller: true
spec:
  nodeRebootMethod:
    $node_reboot_method: {}
  nodeDMSAddress:
    ip: $dms_ip
    port: $dms_port
  dpus:$dpus
EOF
    ); then
        error "Failed to create DPUNode $kube_node_ref: $output"
    fi
    log "DPUNode $kube_node_ref applied successfully"
}

main() {
    log "Running cmd $cmd"
    discover_dpu
    if [ ${#pci_addresses[@]} -eq 0 ]; then
        error "No DPUs found on this system, exiting"
    fi
    case "$cmd" in
        check-rshim-not-occupied)
            check_rshim_not_occupied
            log "Main function completed successfully"
            return 0
            ;;
        register) ;;
        *) error "Invalid cmd: $cmd. Valid options are: register check-rshim-not-occupied" ;;
    esac
    if [ -z "$kube_node_ref" ]; then
        error "in k8s env, kube-node-ref is required"
    fi
    check_and_install_kubectl
    if [ "$external_certificate" == "none" ]; then
        create_certificate
    fi
    local pci
    for pci in "${pci_addresses[@]}"; do
        create_dpu_device "$pci"
    done
    log "DPU devices created successfully"
    create_dpunode
    mkdir -p "$dms_conf_dir"
    echo "-bind_address $dms_ip:$dms_port -image_folder $dms_image_dir -target_pci $(format_pci_address "${pci_addresses[0]}")" > "$dms_conf_dir/dms.conf"
    log "DMS configuration created at $dms_conf_dir/dms.conf"
    if [ "$script_variant" == "C" ]; then
        log "Skipping Systemd service creation in Kubernetes environment"
    else
        log "Skipping restore-vf service creation in Kubernetes environment"
    fi
    for pci in "${pci_addresses[@]}"; do
        devlink dev param set "pci/$pci" name grace_period value 0 cmode runtime || true
    done
    log "Main function completed successfully"
}

if ! main; then
    error "Failed to complete main function: $?"
fi
