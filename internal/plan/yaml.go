package plan

import (
	"bytes"
	"fmt"

	"sigs.k8s.io/yaml"
)

// RBACYAML renders the plan's objects as one multi-document YAML stream,
// ready to commit to a GitOps repository instead of applying.
func (p *Plan) RBACYAML() ([]byte, error) {
	var b bytes.Buffer
	for i, c := range p.Changes {
		data, err := yaml.Marshal(c.Object.Object)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", c.Ref(), err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(data)
	}
	return b.Bytes(), nil
}
