#!/bin/bash
create_certificate() {
    if [ "$external_certificate" == "none" ]; then
        kubectl get secret "$secret" -n "$namespace"
    fi
}
for pci in "${pci_addresses[@]}"; do
    create_dpu_device "$pci"
done )
