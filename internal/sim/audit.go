package sim

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/dpfdoctor/dpfdoctor/internal/access"
)

// AuditEvent is the part of an audit.k8s.io/v1 Event dpfdoctor reads: who
// made which request, and the authorizer's decision.
type AuditEvent struct {
	Stage      string `json:"stage"`
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	Annotations map[string]string `json:"annotations"`
}

// Request is the event as an access.Request: a non-resource URL without
// its query, or the object reference.
func (e AuditEvent) Request() access.Request {
	if e.ObjectRef == nil {
		path, _, _ := strings.Cut(e.RequestURI, "?")
		return access.Request{Verb: e.Verb, NonResourceURL: path}
	}
	o := e.ObjectRef
	return access.Request{Verb: e.Verb, Group: o.APIGroup, Resource: o.Resource, Subresource: o.Subresource, Namespace: o.Namespace, Name: o.Name}
}

// Allowed is the RBAC authorizer's decision; Reason its explanation.
func (e AuditEvent) Allowed() bool  { return e.Annotations["authorization.k8s.io/decision"] == "allow" }
func (e AuditEvent) Reason() string { return e.Annotations["authorization.k8s.io/reason"] }

// Incidental reports requests kubectl makes on its own, which no script
// line asks for: discovery and OpenAPI reads (system:discovery allows them
// everyone), and the namespace read after a NotFound in a namespace, which
// only tells "no such namespace" apart and whose refusal changes nothing
// (cli-runtime resource.Info.Get).
func (e AuditEvent) Incidental() bool {
	r := e.Request()
	if r.NonResourceURL != "" {
		return r.NonResourceURL != "/version" && (strings.HasPrefix(r.NonResourceURL, "/api") || strings.HasPrefix(r.NonResourceURL, "/openapi/"))
	}
	return r.Verb == "get" && r.Resource == "namespaces" && r.Group == "" && r.Subresource == ""
}

// ReadAudit returns the completed requests of user (any when "") in the
// audit log from offset on, and the offset of the log's end.
func ReadAudit(path string, offset int64, user string) ([]AuditEvent, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, offset, err
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Seek(offset, 0); err != nil {
		return nil, offset, err
	}
	var out []AuditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		offset += int64(len(sc.Bytes())) + 1
		var ev AuditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, offset, fmt.Errorf("audit log %s: %w", path, err)
		}
		if ev.Stage == "ResponseComplete" && (user == "" || ev.User.Username == user) {
			out = append(out, ev)
		}
	}
	return out, offset, sc.Err()
}
