package sim

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/dpfdoctor/dpfdoctor/internal/dpf"
)

// crds returns the CRDs the sim installs: DPUNode, DPUDevice and
// DPFOperatorConfig from DPF, Certificate and Issuer from cert-manager. The
// DPUDevice CRD has a status subresource when statusSubresource is set
// (v25.7 on, or CRDs upgraded ahead of the operator).
func crds(statusSubresource bool) []*apiextensionsv1.CustomResourceDefinition {
	str := apiextensionsv1.JSONSchemaProps{Type: "string"}
	integer := apiextensionsv1.JSONSchemaProps{Type: "integer"}
	boolean := apiextensionsv1.JSONSchemaProps{Type: "boolean"}
	conditions := apiextensionsv1.JSONSchemaProps{Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{
		Type: "object", Required: []string{"type", "status"},
		Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"type": str, "status": str, "reason": str, "message": str,
			"lastTransitionTime": {Type: "string", Format: "date-time"}, "observedGeneration": integer,
		},
	}}}
	open := func(props map[string]apiextensionsv1.JSONSchemaProps) apiextensionsv1.JSONSchemaProps {
		t := true
		return apiextensionsv1.JSONSchemaProps{Type: "object", Properties: props, XPreserveUnknownFields: &t}
	}

	dpuDeviceVersion := version("v1alpha1",
		open(map[string]apiextensionsv1.JSONSchemaProps{
			"pciAddress": str, "psid": str, "opn": str, "bmcIp": str, "numberOfPFs": integer, "pf0Name": str, "serialNumber": str,
		}),
		open(map[string]apiextensionsv1.JSONSchemaProps{
			"pciAddress": str, "psid": str, "opn": str, "bmcIp": str, "bmcPort": integer, "serialNumber": str, "pf0Mac": str, "conditions": conditions,
		}), statusSubresource)
	if !statusSubresource {
		// v25.4.0: spec only, no status at all.
		delete(dpuDeviceVersion.Schema.OpenAPIV3Schema.Properties, "status")
	}

	return []*apiextensionsv1.CustomResourceDefinition{
		crd(dpf.GroupProvisioning, "DPUNode", "dpunodes", "dpunode", nil, version("v1alpha1",
			open(map[string]apiextensionsv1.JSONSchemaProps{
				"nodeRebootMethod": open(nil),
				"nodeDMSAddress":   open(map[string]apiextensionsv1.JSONSchemaProps{"ip": str, "port": integer}),
				"dpus":             {Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: ptr(open(map[string]apiextensionsv1.JSONSchemaProps{"name": str}))}},
			}),
			open(map[string]apiextensionsv1.JSONSchemaProps{"conditions": conditions, "dpuInstallInterface": str, "kubeNodeRef": str}), true)),
		crd(dpf.GroupProvisioning, "DPUDevice", "dpudevices", "dpudevice", nil, dpuDeviceVersion),
		crd(dpf.GroupProvisioning, "DPU", "dpus", "dpu", nil, version("v1alpha1",
			open(map[string]apiextensionsv1.JSONSchemaProps{"nodeName": str, "pciAddress": str, "bfb": str}),
			open(map[string]apiextensionsv1.JSONSchemaProps{"phase": str, "conditions": conditions}), true)),
		crd(dpf.GroupOperator, "DPFOperatorConfig", "dpfoperatorconfigs", "dpfoperatorconfig", nil, version("v1alpha1",
			open(map[string]apiextensionsv1.JSONSchemaProps{
				"overrides": open(map[string]apiextensionsv1.JSONSchemaProps{
					"paused": boolean, "kubernetesAPIServerVIP": str, "kubernetesAPIServerPort": integer,
				}),
				"provisioningController": open(map[string]apiextensionsv1.JSONSchemaProps{"bfbPVCName": str, "dmsTimeout": integer}),
			}),
			open(map[string]apiextensionsv1.JSONSchemaProps{"conditions": conditions, "observedGeneration": integer}), true)),
		crd(dpf.GroupCertManager, "Certificate", "certificates", "certificate", []string{"cert", "certs"}, version("v1",
			open(map[string]apiextensionsv1.JSONSchemaProps{
				"secretName": str, "commonName": str, "duration": str, "renewBefore": str,
				"ipAddresses": {Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &str}},
				"issuerRef":   open(map[string]apiextensionsv1.JSONSchemaProps{"name": str, "kind": str, "group": str}),
				"isCA":        boolean,
			}),
			open(map[string]apiextensionsv1.JSONSchemaProps{"conditions": conditions, "notAfter": str, "revision": integer}), true)),
		crd(dpf.GroupCertManager, "Issuer", "issuers", "issuer", nil, version("v1",
			open(map[string]apiextensionsv1.JSONSchemaProps{"selfSigned": open(nil), "ca": open(map[string]apiextensionsv1.JSONSchemaProps{"secretName": str})}),
			open(map[string]apiextensionsv1.JSONSchemaProps{"conditions": conditions}), true)),
	}
}

func ptr[T any](v T) *T { return &v }

func version(name string, spec, status apiextensionsv1.JSONSchemaProps, statusSubresource bool) apiextensionsv1.CustomResourceDefinitionVersion {
	v := apiextensionsv1.CustomResourceDefinitionVersion{
		Name: name, Served: true, Storage: true,
		Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
			Type:       "object",
			Properties: map[string]apiextensionsv1.JSONSchemaProps{"spec": spec, "status": status},
		}},
	}
	if statusSubresource {
		v.Subresources = &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}}
	}
	return v
}

func crd(group, kind, plural, singular string, short []string, v apiextensionsv1.CustomResourceDefinitionVersion) *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"},
		ObjectMeta: metav1.ObjectMeta{Name: plural + "." + group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group:    group,
			Names:    apiextensionsv1.CustomResourceDefinitionNames{Kind: kind, ListKind: kind + "List", Plural: plural, Singular: singular, ShortNames: short},
			Scope:    apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{v},
		},
	}
}

// CRDs returns the CRDs the sim installs, for tests that need DPF's API
// without its operator (a partially installed DPF).
func CRDs() []*apiextensionsv1.CustomResourceDefinition { return crds(false) }

// ReleaseCRDs returns the CRDs as a release ships them (the DPUDevice CRD
// with a status subresource from v25.7 on), for tests that upgrade the CRDs
// ahead of the operator, as an admin would before a DPF upgrade.
func ReleaseCRDs(r dpf.Release) []*apiextensionsv1.CustomResourceDefinition {
	return crds(r.DPUDeviceStatusSubresource)
}
