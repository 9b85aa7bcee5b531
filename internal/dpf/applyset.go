package dpf

import (
	"crypto/sha256"
	"encoding/base64"
)

// ApplySetID computes the applyset ID the operator labels its inventory
// with: "applyset-" + base64url-no-pad(sha256("<name>.<ns>.Secret.")) + "-v1",
// where name is "<component>-applyset".
func ApplySetID(component, namespace string) string {
	sum := sha256.Sum256([]byte(ApplySetParentName(component) + "." + namespace + ".Secret."))
	return "applyset-" + base64.RawURLEncoding.EncodeToString(sum[:]) + "-v1"
}

// ApplySetParentName is the parent Secret of a component's applyset.
func ApplySetParentName(component string) string { return component + "-applyset" }
