#!/bin/bash
# A re-creation of the v25.7-era dmsinit.sh (variant C in docs/versions.md),
# written for dpfdoctor's lint tests from the published facts about the
# script. Compared with v25.4.0 it waits for the three keys of the node's
# server Secret with stderr discarded (2> /dev/null || true), names the
# DPUDevice after the lower-case serial number and writes the PCI address
# through the status subresource (kubectl patch --subresource status). It is
# not NVIDIA's file; only the shape of its kubectl calls matters here.

set -euo pipefail

DEFAULT_KUBERNETES_VERSION="1.32.0"

kubeconfig=""
external_certificate="none"
kube_node_ref=""
dms_ip="0.0.0.0"
dms_port="9339"
k8s_env="true"
issuer="dpf-provisioning-issuer"
node_reboot_method="gNOI"
script_name=""
namespace="dpf-operator-system"
dms_conf_dir="/opt/dpf/dms"
dms_image_dir=""
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

usage() {
    cat <<USAGE
Usage: $0 [options]
  --kubeconfig PATH             kubeconfig to use (default: in-cluster)
  --external-certificate NAME   use an existing certificate ("none" creates one)
  --kube-node-ref NODE          the Kubernetes node this host is
  --dms-ip IP                   address DMS listens on (default 0.0.0.0)
  --dms-port PORT               port DMS listens on (default 9339)
  --k8s-env true|false          running inside Kubernetes (default true)
  --issuer NAME                 cert-manager issuer (default dpf-provisioning-issuer)
  --node-reboot-method METHOD   gNOI, external or script
  --script-name NAME            script for --node-reboot-method script
  --dms-conf-dir DIR            DMS configuration directory
  --dms-image-dir DIR           BFB image directory
  --cmd CMD                     register or check-rshim-not-occupied
USAGE
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --kubeconfig)
            kubeconfig="$2"
            shift 2
            ;;
        --external-certificate)
            external_certificate="$2"
            shift 2
            ;;
        --kube-node-ref)
            kube_node_ref="$2"
            shift 2
            ;;
        --dms-ip)
            dms_ip="$2"
            shift 2
            ;;
        --dms-port)
            dms_port="$2"
            shift 2
            ;;
        --k8s-env)
            k8s_env="$2"
            shift 2
            ;;
        --issuer)
            issuer="$2"
            shift 2
            ;;
        --node-reboot-method)
            node_reboot_method="$2"
            shift 2
            ;;
        --script-name)
            script_name="$2"
            shift 2
            ;;
        --namespace)
            namespace="$2"
            shift 2
            ;;
        --dms-conf-dir)
            dms_conf_dir="$2"
            shift 2
            ;;
        --dms-image-dir)
            dms_image_dir="$2"
            shift 2
            ;;
        --cmd)
            cmd="$2"
            shift 2
            ;;
        -h|--help)
            usage
            exit 0
            ;;
        *)
            usage
            echo "Unknown option: $1"
            exit 1
            ;;
    esac
done

if [ -z "$dms_image_dir" ]; then
    dms_image_dir="$dms_conf_dir/bfb"
fi

if [ -n "$kubeconfig" ]; then
    kubectl_cmd="kubectl --kubeconfig $kubeconfig"
fi

if [ "$k8s_env" == "true" ]; then
    node_name="$kube_node_ref"
else
    node_name=$(hostname -s | tr '[:upper:]' '[:lower:]')
fi

check_and_install_kubectl() {
    if command -v kubectl &> /dev/null; then
        log "kubectl already installed"
    else
        log "kubectl not found, downloading and installing kubectl $DEFAULT_KUBERNETES_VERSION in /tmp/doca-bin"
        mkdir -p /tmp/doca-bin
        if ! curl -sSLo /tmp/doca-bin/kubectl "https://dl.k8s.io/release/v${DEFAULT_KUBERNETES_VERSION}/bin/linux/amd64/kubectl"; then
            error "Failed to download kubectl"
        fi
        chmod +x /tmp/doca-bin/kubectl || error "Failed to set execute permissions for kubectl"
        export PATH="/tmp/doca-bin:$PATH"
    fi
    output=$($kubectl_cmd version 2>&1)
    if [ $? -ne 0 ]; then
        error "Failed to check kubectl version: $output"
    fi
}

# check_resource_exists TYPE NAME: any error (NotFound, Forbidden, no
# connection) reads as "absent".
check_resource_exists() {
    local resource_type=$1
    local resource_name=$2
    local output
    output=$($kubectl_cmd -n "$namespace" get -o json "$resource_type" "$resource_name" 2>&1)
    if [ $? -eq 0 ]; then
        log "Resource $resource_name of type $resource_type already exists, skipping creation"
        return 0
    fi
    return 1
}

create_certificate() {
    local cert_name="$node_name-dms-server-cert"
    local secret_name=""
    log "Creating certificate"
    if check_resource_exists "Certificate" "$cert_name"; then
        log "Certificate $cert_name already exists, skipping creation"
    else
        output=$(cat <<EOF | $kubectl_cmd apply -f - 2>&1
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: $cert_name
  namespace: $namespace
spec:
  secretName: $node_name-server-secret
  duration: 8760h
  renewBefore: 4380h
  issuerRef:
    name: $issuer
    kind: Issuer
  commonName: $node_name
  ipAddresses:
    - $dms_ip
  usages:
    - server auth
EOF
)
        if [ $? -ne 0 ]; then
            error "Failed to create certificate $cert_name: $output"
        fi
        log "Certificate $cert_name created successfully"
    fi

    secret_name="$node_name-server-secret"
    local max_attempts=30
    local ca_crt="" tls_crt="" tls_key=""
    for ((attempt = 1; attempt <= max_attempts; attempt++)); do
        ca_crt=$($kubectl_cmd get secret -n "$namespace" "$secret_name" -o jsonpath='{.data.ca\.crt}' 2> /dev/null || true)
        tls_crt=$($kubectl_cmd get secret -n "$namespace" "$secret_name" -o jsonpath='{.data.tls\.crt}' 2> /dev/null || true)
        tls_key=$($kubectl_cmd get secret -n "$namespace" "$secret_name" -o jsonpath='{.data.tls\.key}' 2> /dev/null || true)
        if [ -n "$ca_crt" ] && [ -n "$tls_crt" ] && [ -n "$tls_key" ]; then
            break
        fi
        log "Waiting for secret $secret_name to be fully populated... (attempt $attempt/$max_attempts)"
        sleep 2
    done
    if [ -z "$ca_crt" ] || [ -z "$tls_crt" ] || [ -z "$tls_key" ]; then
        error "Timed out waiting for secret $secret_name to be fully populated. ca.crt: ${#ca_crt} chars, tls.crt: ${#tls_crt} chars, tls.key: ${#tls_key} chars"
    fi
    log "Certificate secret name: $secret_name"

    mkdir -p "$dms_conf_dir/certs"
    echo "$ca_crt" | base64 --decode > "$dms_conf_dir/certs/ca.crt"
    echo "$tls_crt" | base64 --decode > "$dms_conf_dir/certs/tls.crt"
    echo "$tls_key" | base64 --decode > "$dms_conf_dir/certs/tls.key"
}

get_pf0_name() {
    local pci=$1
    local net_dir="/sys/bus/pci/devices/$pci/net"
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
    for dev in /sys/bus/pci/devices/*; do
        local device_id
        device_id=$(cat "$dev/device")
        if [ "$device_id" == "0xa2dc" ] || [ "$device_id" == "0xa2d6" ]; then
            local pci
            pci=$(basename "$dev")
            if [[ "$pci" == *.0 ]]; then
                pci_addresses+=("$pci")
                log "Discovered DPU:"
                log "  PCI address: $pci"
            fi
        fi
    done
    log "Total DPUs discovered: ${#pci_addresses[@]}"
}

get_serial_number() {
    local pci=$1
    local serial
    serial=$(lspci -vvs "$pci" | grep "\[SN\]" | awk '{print $NF}')
    if [ -z "$serial" ]; then
        return 1
    fi
    echo "${serial,,}"
}

create_dpu_device() {
    local pci=$1
    local serial
    if ! serial=$(get_serial_number "$pci"); then
        error "Failed to get serial number for PCI address $pci"
    fi
    local dpu_device_name="$serial"
    local pf0_name
    pf0_name=$(get_pf0_name "$pci")
    log "Creating DPUDevice for PCI address $pci"
    if ! check_resource_exists "DPUDevice" "$dpu_device_name"; then
        output=$(cat <<EOF | $kubectl_cmd apply -f - 2>&1
apiVersion: provisioning.dpu.nvidia.com/v1alpha1
kind: DPUDevice
metadata:
  name: $dpu_device_name
  namespace: $namespace
spec:
  serialNumber: $serial
  pf0Name: $pf0_name
EOF
)
        if [ $? -ne 0 ]; then
            error "Failed to create DPUDevice $dpu_device_name: $output"
        fi
        log "DPUDevice $dpu_device_name applied successfully"
    fi
    output=$($kubectl_cmd patch dpudevice "$dpu_device_name" -n "$namespace" --subresource status --type=merge -p "{\"status\":{\"pciAddress\":\"$pci\"}}" 2>&1)
    if [ $? -ne 0 ]; then
        error "Failed to update PCI address for DPUDevice $dpu_device_name: $output"
    fi
    log "Updated PCI address for DPUDevice $dpu_device_name: $pci"
    dpudevice_names+=("$dpu_device_name")
    log "Added $dpu_device_name to dpudevice_names array"
}

create_dpunode() {
    log "Creating DPUNode"
    if check_resource_exists "DPUNode" "$node_name"; then
        return 0
    fi
    local owner=""
    if [ -n "$kube_node_ref" ]; then
        local node_uid
        node_uid=$($kubectl_cmd get node "$kube_node_ref" -o jsonpath='{.metadata.uid}')
        if [ -z "$node_uid" ]; then
            error "Failed to get UID for node $kube_node_ref"
        fi
        owner="
  ownerReferences:
  - apiVersion: v1
    kind: Node
    name: $kube_node_ref
    uid: $node_uid
    controller: true"
    fi
    if [ "$node_reboot_method" == "script" ] && [ -z "$script_name" ]; then
        error "when script reboot method is used, the --script must be specified"
    fi
    local dpus=""
    for name in "${dpudevice_names[@]}"; do
        dpus="$dpus
  - name: $name"
    done
    output=$(cat <<EOF | $kubectl_cmd apply -f - 2>&1
apiVersion: provisioning.dpu.nvidia.com/v1alpha1
kind: DPUNode
metadata:
  name: $node_name
  namespace: $namespace
  labels:
    provisioning.dpu.nvidia.com/dpu-oob-bridge-configured: ""
    feature.node.kubernetes.io/dpu-enabled: "true"$owner
spec:
  nodeRebootMethod:
    $node_reboot_method: {}
  nodeDMSAddress:
    ip: $dms_ip
    port: $dms_port
  dpus:$dpus
EOF
)
    if [ $? -ne 0 ]; then
        error "Failed to create DPUNode $node_name: $output"
    fi
    log "DPUNode $node_name applied successfully"
}

create_dms_config() {
    mkdir -p "$dms_conf_dir" "$dms_image_dir"
    cat > "$dms_conf_dir/dms.conf" <<EOF
-bind_address $dms_ip:$dms_port
-image_folder $dms_image_dir
-ca $dms_conf_dir/certs/ca.crt
-tls_cert_path $dms_conf_dir/certs/tls.crt
-tls_key_path $dms_conf_dir/certs/tls.key
EOF
    log "DMS configuration created at $dms_conf_dir/dms.conf"
}

create_dms_init_systemd_service() {
    if [ "$k8s_env" == "true" ]; then
        log "Skipping Systemd service creation in Kubernetes environment"
        return 0
    fi
    cat > /etc/systemd/system/dms-init.service <<EOF
[Unit]
Description=DMS init
[Service]
ExecStart=/opt/dpf/dmsinit.sh --k8s-env false --kubeconfig $kubeconfig
EOF
    systemctl daemon-reload || error "Failed to reload systemd daemon"
    systemctl enable dms-init.service || error "Failed to enable dms-init.service"
}

check_bridge() {
    ip link show br-dpu > /dev/null || error "Bridge br-dpu check failed"
}

check_rshim_not_occupied() {
    for pci in "${pci_addresses[@]}"; do
        if lsof "/dev/rshim-$pci" > /dev/null 2>&1; then
            if [ -e /dev/termination-log ]; then
                echo "$pci" > /dev/termination-log
            fi
            exit 1
        fi
    done
}

main() {
    log "Running cmd $cmd"
    log "DMS image directory: $dms_image_dir"
    case "$node_reboot_method" in
        gNOI|external|script) ;;
        *) error "Invalid node reboot method: $node_reboot_method. Valid options are: gNOI external script" ;;
    esac
    if [ "$node_reboot_method" != "script" ] && [ -n "$script_name" ]; then
        error "--script-name is only used when the --node-reboot-method is script"
    fi
    if [ "$k8s_env" == "true" ] && [ "$cmd" == "register" ] && [ -z "$kube_node_ref" ]; then
        error "in k8s env, kube-node-ref is required"
    fi
    if [ "$k8s_env" != "true" ]; then
        check_bridge
    fi
    discover_dpu
    if [ ${#pci_addresses[@]} -eq 0 ]; then
        error "No DPUs found on this system, exiting"
    fi
    case "$cmd" in
        check-rshim-not-occupied)
            check_rshim_not_occupied
            return 0
            ;;
        register)
            ;;
        *)
            error "Invalid cmd: $cmd. Valid options are: register check-rshim-not-occupied"
            ;;
    esac
    check_and_install_kubectl
    if [ "$external_certificate" == "none" ]; then
        create_certificate
    fi
    for pci in "${pci_addresses[@]}"; do
        create_dpu_device "$pci"
    done
    log "DPU devices created successfully"
    create_dpunode
    create_dms_config
    create_dms_init_systemd_service
    for pci in "${pci_addresses[@]}"; do
        devlink dev param set "pci/$pci" name grace_period value 0 cmode runtime || true
    done
    log "Main function completed successfully"
}

if ! main; then
    error "Failed to complete main function: $?"
fi
