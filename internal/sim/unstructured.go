package sim

import "k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

func nestedString(obj map[string]any, fields ...string) (string, bool) {
	v, ok, err := unstructured.NestedString(obj, fields...)
	return v, ok && err == nil
}

func nestedInt(obj map[string]any, fields ...string) (int64, bool) {
	v, ok, err := unstructured.NestedFieldNoCopy(obj, fields...)
	if !ok || err != nil {
		return 0, false
	}
	switch n := v.(type) {
	case int64:
		return n, true
	case float64:
		return int64(n), true
	case int:
		return int64(n), true
	}
	return 0, false
}
