package sim

import (
	"encoding/base64"
	"strings"
	"sync"

	"github.com/dpfdoctor/dpfdoctor/internal/selfsigned"
)

// The fake key material every simulated server Secret holds: one real
// (throwaway) CA, certificate and key, made once per sim so the API server
// accepts them as kubernetes.io/tls.
type secretMaterial struct {
	once         sync.Once
	ca, crt, key []byte
	err          error
}

func (c *Cluster) secretData() map[string][]byte {
	m := &c.secrets
	m.once.Do(func() { m.ca, m.crt, m.key, m.err = selfsigned.Issue("127.0.0.1") })
	return map[string][]byte{"ca.crt": m.ca, "tls.crt": m.crt, "tls.key": m.key}
}

// SecretFingerprints returns strings that appear in the simulated Secrets'
// data (raw and base64-encoded, as a Secret's JSON carries it) and nowhere
// else. Tests assert that no dpfdoctor output contains any of them.
func (c *Cluster) SecretFingerprints() []string {
	var out []string
	for _, v := range c.secretData() {
		body := strings.Join(strings.Split(string(v), "\n")[1:2], "")
		if len(body) > 40 {
			body = body[:40]
		}
		out = append(out, body, base64.StdEncoding.EncodeToString(v)[:40])
	}
	return out
}
