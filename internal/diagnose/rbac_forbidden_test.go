package diagnose

import (
	"strings"
	"testing"
)

func TestRBACForbidden(t *testing.T) {
	const ns = " in dpf-operator-system"
	for _, tc := range []struct {
		file string
		want *want
	}{
		{"rbac_forbidden/hypothetical-secrets-forbidden.yaml", &want{
			code: CodeRBACForbidden, pods: []string{"w1-dms", "w2-dms"}, fixable: true,
			// w2's logs were not read: it shares w1's signature group and gets its own Secret name.
			missing:  []string{"get secrets w1-server-secret" + ns, "get secrets w2-server-secret" + ns},
			evidence: []string{`secrets "w1-server-secret" is forbidden`, "may not get secrets w1-server-secret"},
			summary:  "may not get secrets {node}-server-secret" + ns + " (from kubectl's Forbidden message",
			next:     "dpfdoctor fix",
		}},
		{"rbac_forbidden/hypothetical-secrets-forbidden-quiet.yaml", &want{
			code: CodeRBACForbidden, pods: []string{"w1-dms"}, fixable: true,
			// Pinned to the Secret although the log shows no Forbidden; the
			// status patch the script makes later is granted in the same go.
			missing: []string{
				"get dpudevices.provisioning.dpu.nvidia.com/status" + ns,
				"get secrets w1-server-secret" + ns,
				"patch dpudevices.provisioning.dpu.nvidia.com/status" + ns,
			},
			evidence: []string{"Waiting for secret w1-server-secret", "Timed out waiting for secret", "may not get secrets w1-server-secret"},
			summary:  "(from SubjectAccessReview",
		}},
		{"rbac_forbidden/per-node-grant.yaml", &want{
			code: CodeRBACForbidden, pods: []string{"w2-dms"}, fixable: true,
			missing: []string{"get secrets w2-server-secret" + ns},
		}},
		{"rbac_forbidden/near-miss-secrets-granted.yaml", nil},
		{"status_skew/fixable.yaml", nil},
	} {
		t.Run(tc.file, func(t *testing.T) { expect(t, of(ClassRBACForbidden), tc.file, tc.want) })
	}
}

func TestRBACForbiddenCreateDPUNode(t *testing.T) {
	expect(t, of(ClassRBACForbidden), "status_skew/near-miss-dpunode-forbidden.yaml", &want{
		code: CodeRBACForbidden, pods: []string{"w1-dms"}, fixable: true,
		missing:  []string{"create dpunodes.provisioning.dpu.nvidia.com in dpf-operator-system"},
		evidence: []string{"cannot create resource \"dpunodes\""},
	})
}

// A Forbidden from a run before the grant is stale: the pod is waiting for
// its next restart, and fix has nothing to grant, only restarts. So is a
// timed-out wait for a Secret that exists and may be read now (the script
// hid kubectl's error).
func TestRBACGrantedSince(t *testing.T) {
	expect(t, of(ClassRBACForbidden), "rbac_forbidden/near-miss-granted-since.yaml", &want{
		code: CodeRBACGranted, pods: []string{"w1-dms"}, fixable: true,
		summary:  "1 pod failed on RBAC that allows the call now (granted since that run)",
		evidence: []string{`secrets "w1-server-secret" is forbidden`},
		next:     "dpfdoctor fix --apply",
	})
	b := load(t, "rbac_forbidden/hypothetical-secrets-forbidden-quiet.yaml")
	for i := range b.Access {
		b.Access[i].Allowed = true
	}
	fs := of(ClassRBACForbidden).Classify(b)
	if len(fs) != 1 || fs[0].Code != CodeRBACGranted || len(fs[0].Missing) != 0 || !fs[0].Fixable ||
		!strings.Contains(fs[0].detail["w1-dms"], "timed out waiting for Secret w1-server-secret, which exists") {
		t.Fatalf("quiet, granted since: %+v", fs)
	}
	b.Secrets = nil // a Secret that does not exist is no grant's doing
	if fs := of(ClassRBACForbidden).Classify(b); len(fs) != 0 {
		t.Errorf("without the Secret: %+v", fs)
	}
}
