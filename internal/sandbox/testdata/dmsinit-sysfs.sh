#!/bin/bash
# A dms-init written for dpfdoctor's sandbox tests: it finds the DPU the way
# dmsinit.sh does (docs/versions.md) -- BlueField PCI functions in sysfs by
# device ID (0xa2dc BlueField-3, 0xa2d6 BlueField-2), the PF0 netdev under
# the function's net/ directory, the serial number from lspci's VPD, the
# rshim misc files under /dev -- and then makes the kubectl calls of the
# v25.7-era script (variant C) in Kubernetes mode: version, DPUDevice named
# after the serial number, its status patch, the Node's UID, DPUNode. It is
# not NVIDIA's file.

set -euo pipefail

external_certificate="none"
kube_node_ref=""
dms_ip="0.0.0.0"
dms_port="9339"
namespace="dpf-operator-system"
dms_conf_dir="/opt/dpf/dms"
dms_image_dir=""
node_reboot_method="gNOI"
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

create_dpu_device() {
    local pci=$1 serial name pf0 output
    if ! serial=$(get_serial_number "$pci"); then
        error "Failed to get serial number for PCI address $pci"
    fi
    name="$serial"
    pf0=$(get_pf0_name "$pci")
    if ! check_resource_exists DPUDevice "$name"; then
        log "Creating DPUDevice for PCI address $(format_pci_address "$pci")"
        if ! output=$(cat <<EOF | $kubectl_cmd apply -f - 2>&1
apiVersion: provisioning.dpu.nvidia.com/v1alpha1
kind: DPUDevice
metadata:
  name: $name
  namespace: $namespace
spec:
  serialNumber: ${serial^^}
  pf0Name: $pf0
  numberOfPFs: 2
EOF
        ); then
            error "Failed to create DPUDevice $name: $output"
        fi
        log "DPUDevice $name applied successfully"
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
        error "this fixture runs in Kubernetes mode only (--external-certificate TODO)"
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
    log "Skipping Systemd service creation in Kubernetes environment"
    for pci in "${pci_addresses[@]}"; do
        devlink dev param set "pci/$pci" name grace_period value 0 cmode runtime || true
    done
    log "Main function completed successfully"
}

if ! main; then
    error "Failed to complete main function: $?"
fi
